/* proc: the processes dpulet forks — a container's shim, the container
 * itself, and probe checks — and how it recognises them later.
 *
 * A container runs under a shim, a forked copy of dpulet in its own
 * session that outlives dpulet: the shim forks the container, copies its
 * stdout and stderr into the CRI-format log file
 * ("<RFC3339Nano> stdout|stderr F|P <line>"), waits for it and writes the
 * exit record "<exit code> <signal> <finished wall ns>" to exit_path before
 * it ends. A restarted dpulet therefore finds a container it left running
 * (its PID and start time in the state file) and learns how it ended from
 * the exit record, even if it ended while dpulet was down.
 *
 * The container process: a new session (its PID is its process group, so
 * a signal reaches the processes it started), a private mount namespace
 * with every volume bind-mounted at its mountPath (read-only when asked),
 * the working directory, stdin /dev/null, and execve() of the resolved
 * path with exactly the env given.
 *
 * Probes run in a forked child (exec: in the container's mount namespace
 * with its env; tcpSocket: a connect; httpGet: one HTTP/1.1 GET, 200-399
 * is success) whose exit status is the result, so the event loop never
 * waits on a probe; the caller kills it at its timeout.
 *
 * Threads: call from the loop thread; the children call only what is safe
 * after fork() in a process whose other threads may hold locks (no
 * allocation after the fork in the container child). */
#ifndef DPF_DPULET_PROC_H
#define DPF_DPULET_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "dpulet/podplan.h"

struct proc_bind {
    const char *source; /* materialised volume on the node */
    const char *target; /* mountPath */
    bool read_only;
};

struct proc_spec {
    const char *path;    /* resolved executable */
    char *const *argv;   /* argv[0] as given in the spec */
    char *const *envp;   /* complete environment */
    const char *workdir; /* NULL = / */
    const struct proc_bind *binds;
    size_t n_binds;
    const char *log_path;  /* CRI log file (appended) */
    const char *exit_path; /* exit record written by the shim */
};

struct proc_started {
    pid_t shim, pid;                /* shim and container */
    uint64_t shim_start, pid_start; /* /proc/<pid>/stat start times */
    int exec_errno;                 /* != 0: the container never ran */
    char error[256];                /* why, when exec_errno != 0 */
};

/* Fork the shim and the container. 0 (check out->exec_errno: a container
 * that could not start is reported there, with its shim already gone), or
 * -errno when fork/pipe failed. */
int proc_start(const struct proc_spec *s, struct proc_started *out);

/* The start time (clock ticks since boot) of pid, 0 if it does not exist
 * or is a zombie. */
uint64_t proc_start_time(pid_t pid);
/* True if pid exists with that start time (and is not a zombie). */
bool proc_alive(pid_t pid, uint64_t start);
/* Read an exit record: 1 when present (code, signal, finished filled), 0
 * when absent, -errno on a malformed file. */
int proc_read_exit(const char *exit_path, int *code, int *sig,
                   int64_t *finished_ns);

/* Start one probe check; returns the child's pid (its own process group)
 * or -errno. For exec, pid is the container (its mount namespace is
 * joined) and envp its env. host NULL means 127.0.0.1. */
pid_t proc_probe(const struct dpulet_probe *p, pid_t pid, char *const *envp,
                 const char *host);

/* Write a CRI log line from dpulet itself (for example "exec failed");
 * best effort. */
void proc_log_line(const char *log_path, const char *stream, const char *line);

#endif

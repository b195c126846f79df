/*
 * node_service.h: what the fixtures that run a Node.js service from .deps/ (kinesalite.c,
 * dynalite.c) share: finding its script, a free loopback port, starting node so that it
 * dies with the test (PR_SET_PDEATHSIG), and stopping it (SIGTERM, then SIGKILL).
 */
#ifndef SCACHE_TEST_NODE_SERVICE_H
#define SCACHE_TEST_NODE_SERVICE_H

#include <stddef.h>
#include <sys/types.h>

/* The path of <rel> (e.g. "tests/node_loopback.js") under $SCACHE_SOURCE_ROOT, then
 * $KINESALITE_ROOT, then KINESALITE_DEFAULT_ROOT when compiled in, then "."; 0, or -1 when
 * none exists. */
int node_service_find_source(const char *rel, char *path, size_t len);

/* node_service_find_source of .deps/node_modules/<rel>. */
int node_service_find(const char *rel, char *path, size_t len);

/* A port free now on 127.0.0.1 (another process may take it before node does: callers
 * retry), or -1. */
int node_service_free_port(void);

/* Whether something accepts connections on 127.0.0.1:port. */
int node_service_port_open(int port);

/* Start `node argv[1] ...` (argv[0] is "node", NULL-terminated) with stdin from /dev/null,
 * stdout to out_fd (or /dev/null when out_fd < 0; out_fd and close_fd are closed in the
 * child), stderr to /dev/null unless the environment variable log_env is set. The child
 * is killed when the test process dies. Returns its pid, or -1. */
pid_t node_service_spawn(char *const argv[], int out_fd, int close_fd, const char *log_env);

/* Stop the process *pid (SIGTERM, up to 2 s, then SIGKILL) and reap it; *pid becomes 0.
 * Accepts *pid <= 0. */
void node_service_stop(pid_t *pid);

#endif

/*
 * node_service.c: starting and stopping the Node.js services the tests run on loopback
 * (see node_service.h). One copy for kinesalite.c and dynalite.c.
 */
#include "node_service.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

int node_service_find_source(const char *rel, char *path, size_t len)
{
#ifndef KINESALITE_DEFAULT_ROOT
#define KINESALITE_DEFAULT_ROOT "."
#endif
	const char *roots[] = {getenv("SCACHE_SOURCE_ROOT"), getenv("KINESALITE_ROOT"),
	                       KINESALITE_DEFAULT_ROOT, "."};
	struct stat st;
	for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
		if (!roots[i] || !*roots[i])
			continue;
		util_fmt(path, len, "%s/%s", roots[i], rel);
		if (stat(path, &st) == 0)
			return 0;
	}
	return -1;
}

int node_service_find(const char *rel, char *path, size_t len)
{
	char in_deps[512];
	util_fmt(in_deps, sizeof in_deps, ".deps/node_modules/%s", rel);
	return node_service_find_source(in_deps, path, len);
}

static void loopback(struct sockaddr_in *a, int port)
{
	memset(a, 0, sizeof *a);
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

/* The lowest port the kernel hands out on its own (connect, bind to 0). */
static int ephemeral_low(void)
{
	int low = 32768;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	if (f) {
		if (fscanf(f, "%d", &low) != 1)
			low = 32768;
		fclose(f);
	}
	return low;
}

/* A port below the ephemeral range: one the kernel handed out could be taken again as
 * the source port of an outgoing connection (or a client connecting to it while
 * nothing listens could connect to itself) before the service binds it, which matters
 * for a service stopped and started again on the same port. */
int node_service_free_port(void)
{
	int low = ephemeral_low();
	/* pid ^ seconds gave two tests forked one after the other the same seed across a
	 * second's boundary (4000 ^ T == 4001 ^ (T + 1) for an even T), so the same ports, and
	 * the later one could take the other's kinesalite for its own: mix the pid and the
	 * clock's nanoseconds */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	unsigned seed = (unsigned)getpid() * 2654435761u ^ (unsigned)ts.tv_nsec ^
	                (unsigned)ts.tv_sec * 40503u;
	for (int i = 0; i < 200; i++) {
		int port = low > 10001 ? 10000 + (int)(rand_r(&seed) % (unsigned)(low - 10000)) : 0;
		struct sockaddr_in a;
		socklen_t al = sizeof a;
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			return -1;
		loopback(&a, port);
		int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
		         getsockname(fd, (struct sockaddr *)&a, &al) == 0;
		close(fd);
		if (ok)
			return ntohs(a.sin_port);
	}
	return -1;
}

int node_service_port_open(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;
	loopback(&a, port);
	int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
	close(fd);
	return ok;
}

pid_t node_service_spawn(char *const argv[], int out_fd, int close_fd, const char *log_env)
{
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	/* die with the test, whatever happens to it */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	if (close_fd >= 0)
		close(close_fd);
	int nul = open("/dev/null", O_RDWR);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(out_fd >= 0 ? out_fd : nul, 1);
		if (!log_env || !getenv(log_env))
			dup2(nul, 2);
		close(nul);
	}
	if (out_fd >= 0)
		close(out_fd);
	execvp("node", argv);
	_exit(127);
}

void node_service_stop(pid_t *pid)
{
	int status;
	if (!pid || *pid <= 0)
		return;
	kill(*pid, SIGTERM);
	for (int i = 0; i < 200; i++) {
		if (waitpid(*pid, &status, WNOHANG) == *pid) {
			*pid = 0;
			return;
		}
		util_sleep_ms(10);
	}
	kill(*pid, SIGKILL);
	waitpid(*pid, &status, 0);
	*pid = 0;
}

/*
 * log_sink.c: where the middleware's lines go. The application's sink (config.log) if it
 * gave one; else config.log_file, opened once in append mode and reopened on demand for
 * rotation (scache_middleware_reopen_log); else stderr. One line, one call: a file gets
 * each line and its newline in a single write(2) on an O_APPEND descriptor, so lines of
 * this process and of others appending to the same file never interleave.
 *
 * Reopening opens the new file before taking log_mu and closes the old one after
 * releasing it, so a slow filesystem never holds up the requests' lines longer than a
 * pointer swap. The library installs no signal handler: the application decides which
 * signal (if any) means "reopen", and calls in from an ordinary thread.
 */
#include "middleware_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static int open_log(const char *path)
{
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

/* "cannot open log_file 'PATH': REASON", thread-safe (strerror_r, XSI). */
static void open_error(char *buf, size_t len, const char *what, const char *path, int err)
{
	char why[128] = "";
	if (strerror_r(err, why, sizeof why) != 0)
		snprintf(why, sizeof why, "error %d", err);
	snprintf(buf, len, "%s '%s': %s", what, path, why);
}

scache_err log_sink_open(scache_middleware *mw, char *errbuf, size_t errlen)
{
	mw->log_fd = -1;
	const char *path = mw->cfg.log_file;
	mw->cfg.log_file = NULL; /* borrowed: log_path is ours */
	if (!path)
		return SCACHE_OK;
	if (mw->cfg.log) {
		mw_set_err(errbuf, errlen,
		           "middleware: config.log and config.log_file are exclusive (one sink)");
		return SCACHE_ECONFIG;
	}
	if (!path[0]) {
		mw_set_err(errbuf, errlen, "middleware: config.log_file is empty");
		return SCACHE_ECONFIG;
	}
	int fd = open_log(path);
	if (fd < 0) {
		if (errbuf && errlen)
			open_error(errbuf, errlen, "middleware: cannot open log_file", path, errno);
		return SCACHE_EIO;
	}
	mw->log_path = strdup(path);
	if (!mw->log_path) {
		close(fd);
		return SCACHE_ENOMEM;
	}
	mw->log_fd = fd;
	return SCACHE_OK;
}

void log_sink_close(scache_middleware *mw)
{
	if (mw->log_path && mw->log_fd >= 0)
		close(mw->log_fd);
	free(mw->log_path);
	mw->log_path = NULL;
	mw->log_fd = -1;
}

/* The whole line and its newline, in one write(2) unless the kernel splits it. */
static void write_line(int fd, const char *line, size_t len)
{
	char nl = '\n';
	struct iovec iov[2] = {{(void *)line, len}, {&nl, 1}};
	int n = 2;
	struct iovec *v = iov;
	while (n > 0) {
		ssize_t w = writev(fd, v, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return; /* nowhere to report it: the log is what failed */
		}
		size_t done = (size_t)w;
		while (n > 0 && done >= v->iov_len) {
			done -= v->iov_len;
			v++;
			n--;
		}
		if (n > 0) {
			v->iov_base = (char *)v->iov_base + done;
			v->iov_len -= done;
		}
	}
}

void efficiency_emit(scache_middleware *mw, const char *line, size_t len)
{
	pthread_mutex_lock(&mw->log_mu);
	if (mw->cfg.log) {
		mw->cfg.log(mw->cfg.log_arg, line, len);
	} else if (mw->log_path) {
		write_line(mw->log_fd, line, len);
	} else {
		fwrite(line, 1, len, stderr);
		fputc('\n', stderr);
		fflush(stderr);
	}
	pthread_mutex_unlock(&mw->log_mu);
}

scache_err scache_middleware_reopen_log(scache_middleware *mw)
{
	if (!mw)
		return SCACHE_EINVAL;
	if (!mw->log_path) /* set once at creation: no lock needed to read it */
		return SCACHE_OK;
	int fd = open_log(mw->log_path);
	if (fd < 0) {
		int err = errno;
		char msg[512], full[560];
		open_error(msg, sizeof msg, "cannot reopen log_file", mw->log_path, err);
		snprintf(full, sizeof full, "%s (lines still go to the old file)", msg);
		efficiency_warning(mw, full);
		return SCACHE_EIO;
	}
	pthread_mutex_lock(&mw->log_mu);
	int old = mw->log_fd;
	mw->log_fd = fd;
	pthread_mutex_unlock(&mw->log_mu);
	close(old);
	return SCACHE_OK;
}

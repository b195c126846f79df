/*
 * log_sink.c: where the middleware's lines go. The application's sink (config.log) if it
 * gave one, called with one line at a time under log_mu; else config.log_file, opened
 * once in append mode and reopened on demand for rotation (scache_middleware_reopen_log);
 * else stderr.
 *
 * log_file is written in batches by group commit: a line is copied into a buffer under
 * log_mu (a memcpy, no system call); the thread that finds no write in progress becomes
 * the writer, takes the buffer (the other one of two receives lines meanwhile) and writes
 * it outside the lock, then takes what arrived during its write, until none is left. So
 * a line is written before its emit returns or by the writer already at work, never
 * later; the order of lines is the order of emits; under load one write(2) carries many
 * lines instead of one each, and no thread waits on the lock during a write. Each batch
 * holds whole lines and goes to an O_APPEND descriptor, so lines of other processes
 * appending to the same file never cut into ours.
 *
 * Reopening opens the new file before taking log_mu and closes the old one after
 * releasing it (or lets the writer close it once its write to it is done), so a slow
 * filesystem never holds up the requests' lines longer than a pointer swap. The library
 * installs no signal handler: the application decides which signal (if any) means
 * "reopen", and calls in from an ordinary thread.
 */
#include "middleware_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* Bytes a batch buffer holds; a longer line is written on its own (in order). */
#define LOG_BATCH_CAP (64u * 1024u)

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
	mw->log_writing_fd = -1;
	mw->log_closing_fd = -1;
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
	mw->log_buf[0] = malloc(LOG_BATCH_CAP);
	mw->log_buf[1] = malloc(LOG_BATCH_CAP);
	if (!mw->log_path || !mw->log_buf[0] || !mw->log_buf[1] ||
	    pthread_cond_init(&mw->log_cv, NULL) != 0) {
		close(fd);
		free(mw->log_path);
		free(mw->log_buf[0]);
		free(mw->log_buf[1]);
		mw->log_path = NULL;
		return SCACHE_ENOMEM;
	}
	mw->log_fd = fd;
	return SCACHE_OK;
}

void log_sink_close(scache_middleware *mw)
{
	if (!mw->log_path)
		return;
	/* Every emit has returned, so every line is written (see the comment on top). */
	if (mw->log_fd >= 0)
		close(mw->log_fd);
	if (mw->log_closing_fd >= 0)
		close(mw->log_closing_fd);
	pthread_cond_destroy(&mw->log_cv);
	free(mw->log_buf[0]);
	free(mw->log_buf[1]);
	free(mw->log_path);
	mw->log_path = NULL;
	mw->log_fd = -1;
}

/* All n bytes of p, retrying short writes and EINTR. */
static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return; /* nowhere to report it: the log is what failed */
		}
		p += w;
		n -= (size_t)w;
	}
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

/* Group commit of one line to log_file; log_mu held, and held again on return. */
static void batch_emit(scache_middleware *mw, const char *line, size_t len)
{
	size_t need = len + 1;
	while (mw->log_writing && mw->log_len + need > LOG_BATCH_CAP)
		pthread_cond_wait(&mw->log_cv, &mw->log_mu); /* the writer is taking the buffer */
	const char *alone = NULL; /* a line longer than a buffer, written after the batch */
	if (mw->log_len + need <= LOG_BATCH_CAP) {
		char *buf = mw->log_buf[mw->log_cur];
		memcpy(buf + mw->log_len, line, len);
		buf[mw->log_len + len] = '\n';
		mw->log_len += need;
		if (mw->log_writing)
			return; /* the writer at work takes it before it stops */
	} else {
		alone = line;
	}
	mw->log_writing = 1;
	while (mw->log_len > 0 || alone) {
		char *out = mw->log_buf[mw->log_cur];
		size_t n = mw->log_len;
		mw->log_cur ^= 1;
		mw->log_len = 0;
		int fd = mw->log_fd;
		mw->log_writing_fd = fd;
		pthread_cond_broadcast(&mw->log_cv);
		pthread_mutex_unlock(&mw->log_mu);
		write_all(fd, out, n);
		if (alone)
			write_line(fd, alone, len);
		alone = NULL;
		pthread_mutex_lock(&mw->log_mu);
		if (mw->log_closing_fd == fd) { /* reopened during the write: ours to close */
			close(fd);
			mw->log_closing_fd = -1;
		}
	}
	mw->log_writing = 0;
	mw->log_writing_fd = -1;
}

void efficiency_emit(scache_middleware *mw, const char *line, size_t len)
{
	pthread_mutex_lock(&mw->log_mu);
	if (mw->cfg.log) {
		mw->cfg.log(mw->cfg.log_arg, line, len);
	} else if (mw->log_path) {
		batch_emit(mw, line, len);
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
	if (mw->log_writing && mw->log_writing_fd == old) {
		mw->log_closing_fd = old; /* the writer closes it after its write */
		old = -1;
	}
	pthread_mutex_unlock(&mw->log_mu);
	if (old >= 0)
		close(old);
	return SCACHE_OK;
}

/*
 * reader_log.h: the reader's messages (lib/reader_log.c): a limiter that drops a message
 * repeating within a window and counts it, and the default sink on stderr.
 */
#ifndef SCACHE_READER_LOG_H
#define SCACHE_READER_LOG_H

#include <stddef.h>
#include <stdint.h>

#define LOG_SLOTS 16 /* messages remembered */

/* A message recently shown, to drop its repeats. */
typedef struct log_slot {
	uint64_t hash; /* of the message's key, 0 when the slot is free */
	uint64_t shown_ns;
	unsigned dropped; /* repeats dropped since it was shown */
} log_slot;

/* Zero-initialise it, then set repeat_s. One thread at a time. */
typedef struct log_limit {
	log_slot slots[LOG_SLOTS];
	double repeat_s; /* the same message at most once per this long */
} log_limit;

/*
 * log_limit_pass: may msg (len bytes of a msgsize buffer), whose key is `key` (the message
 * itself when NULL; callers pass a key without the parts that vary, such as a sequence
 * number), be shown at now_ns? 0: it was shown less than repeat_s ago, and is counted.
 * 1: show it; when repeats were dropped, msg ends with how many.
 */
int log_limit_pass(log_limit *l, const char *key, uint64_t now_ns, char *msg, size_t len,
                   size_t msgsize);

/* log_stderr: one line on stderr, control bytes shown as \xNN so that text from the
 * service's answers cannot forge lines. */
void log_stderr(const char *msg);

#endif

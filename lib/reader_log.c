/*
 * reader_log.c: the reader's messages. A failing stream tends to say the same thing on
 * every poll; a message repeating within repeat_s is dropped and counted, and the next one
 * shown says how many were dropped. A few slots (LOG_SLOTS) remember recent messages by
 * the hash of their key; a new message takes a free slot, else the one shown longest ago
 * (forgetting the repeats it dropped, which only costs a shorter count).
 */
#include "reader_log.h"

#include <stdio.h>

#include "util.h"

static uint64_t hash_str(const char *s)
{
	uint64_t h = 14695981039346656037ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h ? h : 1;
}

void log_stderr(const char *msg)
{
	char line[1200];
	size_t n = 0;
	for (const char *p = msg; *p && n + 5 < sizeof line; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch < 0x20 || ch == 0x7f)
			n += (size_t)snprintf(line + n, sizeof line - n, "\\x%02x", ch);
		else
			line[n++] = (char)ch;
	}
	line[n] = '\0';
	fprintf(stderr, "libscache: %s\n", line);
}

int log_limit_pass(log_limit *l, const char *key, uint64_t now_ns, char *msg, size_t len,
                   size_t msgsize)
{
	uint64_t h = hash_str(key ? key : msg);
	uint64_t repeat_ns = (uint64_t)(l->repeat_s * 1e9);
	log_slot *slot = NULL, *victim = NULL; /* a free slot, else the one shown longest ago */
	for (size_t i = 0; i < LOG_SLOTS && !slot; i++) {
		log_slot *s = &l->slots[i];
		if (s->hash == h)
			slot = s;
		else if (!victim || (victim->hash && (!s->hash || s->shown_ns < victim->shown_ns)))
			victim = s;
	}
	if (slot && now_ns - slot->shown_ns < repeat_ns) {
		slot->dropped++;
		return 0;
	}
	if (!slot) {
		slot = victim;
		slot->hash = h;
		slot->dropped = 0;
	}
	if (slot->dropped && len < msgsize)
		util_fmt(msg + len, msgsize - len,
		         " (%u more like it in the last %.0f s not shown)", slot->dropped,
		         (double)(now_ns - slot->shown_ns) / 1e9);
	slot->shown_ns = now_ns;
	slot->dropped = 0;
	return 1;
}

/*
 * echoes.h: private to the middleware (lib/echoes.c): the local invalidations whose echo,
 * the instance's own record read back from the stream, is still to come.
 */
#ifndef SCACHE_ECHOES_H
#define SCACHE_ECHOES_H

#include <stddef.h>
#include <stdint.h>

typedef struct echoes echoes;

/* Echoes are expected for at most this long, and for at most this many keys: past
 * either bound an echo is applied as any record would be (a needless miss, never a
 * stale hit). */
#define ECHOES_TTL_NS (60ull * 1000000000ull)
#define ECHOES_MAX    16384u

/* An empty set, or NULL when out of memory (echoes then apply as records do). */
echoes *echoes_new(void);
/* Free it. Accepts NULL. */
void echoes_free(echoes *e);
/* Keys (canonical data-ID strings) were just invalidated in the cache and are about to
 * be published: one echo each is expected. Any thread. Accepts NULL e. */
void echoes_note(echoes *e, const char *const *keys, const size_t *lens, size_t n, uint64_t now);
/* An echo of key arrived: 1 if one was expected (it is then no longer), else 0. Any
 * thread. Accepts NULL e (0). */
int echoes_take(echoes *e, const char *key, size_t len, uint64_t now);
/* Keys with an echo expected (tests). */
size_t echoes_count(echoes *e);

#endif

/*
 * fuzz.h: what every fuzz target of tests/fuzz/ defines: libFuzzer's entry point, fed one
 * input at a time. With clang (-Dfuzzing=true, scripts/fuzz.sh) libFuzzer supplies main();
 * in every other build replay.c does, running the target over the files of its seed
 * corpus (meson suite "fuzz"), so the targets build and their corpora pass everywhere.
 * A target aborts (FUZZ_CHECK) when an invariant of the code under test fails.
 */
#ifndef SCACHE_FUZZ_H
#define SCACHE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__,       \
			        #cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif

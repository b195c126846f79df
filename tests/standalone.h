/*
 * standalone.h: the small part of Criterion's API our concurrency suites use, for
 * builds where Criterion itself cannot run. Under ThreadSanitizer, Criterion aborts
 * at start ("Could not initialize inheritable arena": its fixed-address shared arena
 * collides with TSan's memory layout), so build-tsan/ compiles those suites with
 * -DSCACHE_STANDALONE_TESTS and this header instead. Tests run one after another in
 * one process; a failed assertion ends its test. The closing line has Criterion's
 * "Synthesis" shape so scripts/count-results.py counts each test.
 */
#ifndef SCACHE_TESTS_STANDALONE_H
#define SCACHE_TESTS_STANDALONE_H
/* Lets the assertion macros take no message, as Criterion's do, under -Wpedantic. */
#pragma GCC system_header

#include <setjmp.h>
#include <stdio.h>
#include <string.h>

struct sa_test {
	const char *suite, *name;
	void (*fn)(void);
};
static struct sa_test sa_tests[64];
static int sa_ntests;
static jmp_buf sa_jump;

#define Test(suite, name, ...)                                                          \
	static void suite##_##name(void);                                               \
	__attribute__((constructor)) static void suite##_##name##_register(void)         \
	{                                                                               \
		if (sa_ntests < 64)                                                         \
			sa_tests[sa_ntests++] = (struct sa_test){#suite, #name, suite##_##name}; \
	}                                                                               \
	static void suite##_##name(void)

#define SA_FAIL(cond_text, ...)                                                         \
	do {                                                                            \
		fprintf(stderr, "[----] %s:%d: Assertion Failed: %s\n", __FILE__, __LINE__, \
		        cond_text);                                                         \
		fprintf(stderr, "[----]   " __VA_ARGS__);                                   \
		fprintf(stderr, "\n");                                                      \
		longjmp(sa_jump, 1);                                                        \
	} while (0)

#define cr_assert(cond, ...)                                                            \
	do {                                                                            \
		if (!(cond))                                                                \
			SA_FAIL(#cond, "" __VA_ARGS__);                                     \
	} while (0)
#define cr_assert_not(cond, ...) cr_assert(!(cond), __VA_ARGS__)
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...) cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...) cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...) cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...) cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...) cr_assert((a) <= (b), __VA_ARGS__)
#define cr_assert_null(p, ...) cr_assert((p) == NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...) cr_assert((p) != NULL, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) cr_assert(strcmp((a), (b)) == 0, __VA_ARGS__)

int main(void)
{
	static int passed, failed, i; /* static: kept across longjmp */
	for (i = 0; i < sa_ntests; i++) {
		if (setjmp(sa_jump) == 0) {
			sa_tests[i].fn();
			passed++;
			fprintf(stderr, "[PASS] %s::%s\n", sa_tests[i].suite, sa_tests[i].name);
		} else {
			failed++;
			fprintf(stderr, "[FAIL] %s::%s\n", sa_tests[i].suite, sa_tests[i].name);
		}
	}
	fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: 0\n",
	        passed + failed, passed, failed);
	return failed ? 1 : 0;
}

#endif

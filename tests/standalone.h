/*
 * standalone.h: the small part of Criterion's API our concurrency suites use, for
 * builds where Criterion itself cannot run. Under ThreadSanitizer, Criterion aborts
 * at start ("Could not initialize inheritable arena": its fixed-address shared arena
 * collides with TSan's memory layout), so build-tsan/ compiles those suites with
 * -DSCACHE_STANDALONE_TESTS and this header instead.
 *
 * As with Criterion, every test runs in a child process of its own (fork), so tests
 * share no state: static globals start fresh, and a crash, an abort or a sanitizer
 * report (a non-zero exit status) fails that test only. The runner itself
 * starts no thread, so forking it is safe under TSan. In the child, the suite's (or
 * the test's) .init runs first and its .fini last, also after a failed assertion. A
 * failed assertion in the test's own thread ends the test (longjmp, then .fini); in
 * any other thread it ends the child at once (exit status 1). .timeout and
 * .description are accepted and ignored; .disabled skips the test.
 *
 * Output: "[PASS] suite::name (1.23s)" or "[FAIL] ..." per test, then a closing line
 * of Criterion's "Synthesis" shape so scripts/count-results.py counts each test.
 * "--filter=GLOB" (or a bare GLOB) runs only the tests whose "suite/name" matches.
 */
#ifndef SCACHE_TESTS_STANDALONE_H
#define SCACHE_TESTS_STANDALONE_H
/* Lets the assertion macros take no message, as Criterion's do, under -Wpedantic. */
#pragma GCC system_header

#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The options of Test(...) and TestSuite(...) (a subset of Criterion's). sa_pad keeps
 * "{0, .init = f}" free of override warnings. */
struct sa_cfg {
	int sa_pad;
	void (*init)(void);
	void (*fini)(void);
	double timeout; /* ignored */
	const char *description;
	bool disabled;
};

struct sa_test {
	const char *suite, *name;
	void (*fn)(void);
	struct sa_cfg cfg;
};
struct sa_suite {
	const char *name;
	struct sa_cfg cfg;
};

#define SA_MAX_TESTS 256
static struct sa_test sa_tests[SA_MAX_TESTS];
static int sa_ntests, sa_overflow;
static struct sa_suite sa_suites[16];
static int sa_nsuites;
static jmp_buf sa_jump;
static pthread_t sa_test_thread;

#define Test(suite, name, ...)                                                                     \
	static void suite##_##name(void);                                                          \
	__attribute__((constructor)) static void suite##_##name##_register(void)                   \
	{                                                                                          \
		if (sa_ntests < SA_MAX_TESTS)                                                      \
			sa_tests[sa_ntests++] = (struct sa_test){#suite, #name, suite##_##name,    \
			                                         (struct sa_cfg){0, __VA_ARGS__}}; \
		else                                                                               \
			sa_overflow = 1;                                                           \
	}                                                                                          \
	static void suite##_##name(void)

#define TestSuite(suite, ...)                                                                      \
	__attribute__((constructor)) static void suite##_suite_register(void)                      \
	{                                                                                          \
		if (sa_nsuites < 16)                                                               \
			sa_suites[sa_nsuites++] =                                                  \
			    (struct sa_suite){#suite, (struct sa_cfg){0, __VA_ARGS__}};            \
		else                                                                               \
			sa_overflow = 1;                                                           \
	}                                                                                          \
	struct sa_suite_##suite##_unused

/* Ends the test: from its own thread back to the runner (which runs .fini), from any
 * other thread by ending the child process. */
static inline _Noreturn void sa_fail_now(void)
{
	fflush(stderr);
	if (pthread_equal(pthread_self(), sa_test_thread))
		longjmp(sa_jump, 1);
	fprintf(stderr, "[----]   (in a thread of the test: the test process ends here)\n");
	_exit(1);
}

/* Reports a failed assertion (then the caller may add detail lines) ... */
#define SA_REPORT(cond_text, ...)                                                                  \
	do {                                                                                       \
		fprintf(stderr, "[----] %s:%d: Assertion Failed: %s\n", __FILE__, __LINE__,        \
		        cond_text);                                                                \
		fprintf(stderr, "[----]   " __VA_ARGS__);                                          \
		fprintf(stderr, "\n");                                                             \
	} while (0)
/* ... and ends the test. */
#define SA_FAIL(cond_text, ...)                                                                    \
	do {                                                                                       \
		SA_REPORT(cond_text, __VA_ARGS__);                                                 \
		sa_fail_now();                                                                     \
	} while (0)

#define cr_assert(cond, ...)                                                                       \
	do {                                                                                       \
		if (!(cond))                                                                       \
			SA_FAIL(#cond, "" __VA_ARGS__);                                            \
	} while (0)
#define cr_assert_fail(...)        SA_FAIL("cr_assert_fail", "" __VA_ARGS__)
#define cr_assert_not(cond, ...)   cr_assert(!(cond), __VA_ARGS__)
#define cr_assert_eq(a, b, ...)    cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...)   cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...)    cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...)   cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...)    cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...)   cr_assert((a) <= (b), __VA_ARGS__)
#define cr_assert_null(p, ...)     cr_assert((p) == NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...) cr_assert((p) != NULL, __VA_ARGS__)
#define cr_assert_float_eq(a, b, eps, ...)                                                         \
	do {                                                                                       \
		double sa_a_ = (double)(a), sa_b_ = (double)(b), sa_e_ = (double)(eps);            \
		if (!(sa_a_ - sa_b_ <= sa_e_ && sa_b_ - sa_a_ <= sa_e_)) {                         \
			SA_REPORT("cr_assert_float_eq(" #a ", " #b ", " #eps ")", "" __VA_ARGS__); \
			fprintf(stderr, "[----]   %.17g != %.17g (within %g)\n", sa_a_, sa_b_,     \
			        sa_e_);                                                            \
			sa_fail_now();                                                             \
		}                                                                                  \
	} while (0)
#define cr_assert_str_eq(a, b, ...)                                                                \
	do {                                                                                       \
		const char *sa_a_ = (a), *sa_b_ = (b);                                             \
		if (strcmp(sa_a_, sa_b_) != 0) {                                                   \
			SA_REPORT("cr_assert_str_eq(" #a ", " #b ")", "" __VA_ARGS__);             \
			fprintf(stderr, "[----]   \"%s\" != \"%s\"\n", sa_a_, sa_b_);              \
			sa_fail_now();                                                             \
		}                                                                                  \
	} while (0)

#define cr_log_info(...)  (fprintf(stderr, "[----] " __VA_ARGS__), fprintf(stderr, "\n"))
#define cr_log_warn(...)  (fprintf(stderr, "[WARN] " __VA_ARGS__), fprintf(stderr, "\n"))
#define cr_log_error(...) (fprintf(stderr, "[ERR ] " __VA_ARGS__), fprintf(stderr, "\n"))

/* In the child: .init, the test, .fini (also after a failure). Exit status 0 if all
 * passed; exit(), not _exit(), so sanitizers report at exit and set the status. */
static inline _Noreturn void sa_child(const struct sa_test *t)
{
	void (*init)(void) = t->cfg.init, (*fini)(void) = t->cfg.fini;
	for (int s = 0; s < sa_nsuites; s++)
		if (strcmp(sa_suites[s].name, t->suite) == 0) {
			if (!init)
				init = sa_suites[s].cfg.init;
			if (!fini)
				fini = sa_suites[s].cfg.fini;
		}
	static volatile int failed; /* static: kept across longjmp */
	failed = 0;
	sa_test_thread = pthread_self();
	if (setjmp(sa_jump) == 0) {
		if (init)
			init();
		t->fn();
	} else {
		failed = 1;
	}
	if (fini) {
		if (setjmp(sa_jump) == 0)
			fini();
		else
			failed = 1;
	}
	fflush(NULL);
	exit(failed ? 1 : 0);
}

int main(int argc, char **argv)
{
	const char *filter = NULL;
	for (int i = 1; i < argc; i++)
		filter = strncmp(argv[i], "--filter=", 9) == 0 ? argv[i] + 9 : argv[i];
	if (sa_overflow) {
		fprintf(stderr, "standalone.h: too many tests or suites (raise SA_MAX_TESTS)\n");
		return 1;
	}
	int passed = 0, failed = 0, crashed = 0;
	for (int i = 0; i < sa_ntests; i++) {
		const struct sa_test *t = &sa_tests[i];
		char full[512];
		snprintf(full, sizeof full, "%s/%s", t->suite, t->name);
		if (filter && fnmatch(filter, full, 0) != 0)
			continue;
		if (t->cfg.disabled) {
			fprintf(stderr, "[SKIP] %s::%s: disabled\n", t->suite, t->name);
			continue;
		}
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		fflush(NULL);
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0)
			sa_child(t);
		int status;
		while (waitpid(pid, &status, 0) < 0)
			if (errno != EINTR) {
				perror("waitpid");
				return 1;
			}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double secs =
		    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			passed++;
			fprintf(stderr, "[PASS] %s::%s (%.2fs)\n", t->suite, t->name, secs);
		} else if (WIFEXITED(status)) {
			failed++;
			fprintf(stderr, "[FAIL] %s::%s (%.2fs): exit status %d\n", t->suite,
			        t->name, secs, WEXITSTATUS(status));
		} else {
			crashed++;
			fprintf(stderr, "[FAIL] %s::%s (%.2fs): crashed (signal %d, %s)\n",
			        t->suite, t->name, secs, WTERMSIG(status),
			        strsignal(WTERMSIG(status)));
		}
	}
	fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: %d\n",
	        passed + failed + crashed, passed, failed, crashed);
	return failed + crashed ? 1 : 0;
}

#endif

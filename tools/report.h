/* scachectl report: summaries of efficiency logs (tools/report.c). */
#ifndef SCACHE_TOOLS_REPORT_H
#define SCACHE_TOOLS_REPORT_H

#include <stddef.h>
#include <stdint.h>

/* scachectl_report: argv[0] is "report", the rest are files (none = stdin); the shape of
 * scachectl's subcommands.
 * Prints the report on stdout; returns the exit status: 0, 1 if a file failed, or
 * REPORT_EXIT_WARNING when the verdict is a warning (the cache costs more than it saves),
 * so a script or CI job can act on it. */
#define REPORT_EXIT_WARNING 3
int scachectl_report(int argc, char **argv);

/* Nearest-rank percentile p (0..1] of v (sorted in place); 0 when n is 0. */
double report_percentile(double *v, size_t n, double p);

#endif

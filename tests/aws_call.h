/*
 * aws_call.h: one JSON call from a test fixture to a local AWS-compatible service
 * (kinesalite, dynalite) through the library's own AWS client core. Shared by
 * kinesalite.c and dynalite.c.
 */
#ifndef SCACHE_TEST_AWS_CALL_H
#define SCACHE_TEST_AWS_CALL_H

#include <stddef.h>

#include "aws.h"

/* Run op with the request json on client c, then free c. 0 with *answer (may be NULL;
 * malloc'ed, the answer's JSON) set, or -1 with err (may be NULL) saying why. */
int aws_call_json(aws_client *c, const char *op, const char *json, char **answer, char *err,
                  size_t errlen);

#endif

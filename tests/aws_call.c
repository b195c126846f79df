/*
 * aws_call.c: one JSON call from a test fixture to a local AWS-compatible service (see
 * aws_call.h).
 */
#include "aws_call.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

int aws_call_json(aws_client *c, const char *op, const char *json, char **answer, char *err,
                  size_t errlen)
{
	aws_result res;
	int rc = -1;
	if (answer)
		*answer = NULL;
	json_object *req = json_tokener_parse(json);
	if (!req) {
		util_fmt(err, errlen, "%s: the request is not JSON", op);
		aws_client_free(c);
		return -1;
	}
	aws_call(c, op, req, &res);
	json_object_put(req);
	if (res.err) {
		util_fmt(err, errlen, "%s", res.message);
	} else {
		rc = 0;
		if (answer) {
			*answer = strdup(
			    json_object_to_json_string_ext(res.body, JSON_C_TO_STRING_PLAIN));
			if (!*answer)
				rc = -1;
		}
	}
	aws_result_clear(&res);
	aws_client_free(c);
	return rc;
}

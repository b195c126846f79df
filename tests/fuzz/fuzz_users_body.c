/*
 * fuzz_users_body.c: the example server's body parser (example_server/users_body.c). The
 * input is a PUT /users/{id} body, passed as the server passes it (followed by a NUL):
 * either it is accepted with "name" and "email" strings of no embedded NUL that are valid
 * UTF-8, or refused with a message. The input is also a DynamoDB-mode item for
 * user_json, whose answer, when there is one, is a JSON object.
 */
#include "fuzz.h"

#include <string.h>

#include "users_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body = malloc(size + 1);
	if (!body)
		return 0;
	if (size)
		memcpy(body, data, size);
	body[size] = '\0';

	json_object *o;
	const char *name, *email;
	char msg[200];
	msg[0] = '\0';
	if (users_body_parse(body, size, &o, &name, &email, msg, sizeof msg) == 0) {
		FUZZ_CHECK(o && json_object_is_type(o, json_type_object) && name && email);
		json_object_put(o);
	} else {
		FUZZ_CHECK(o == NULL && name == NULL && email == NULL);
		FUZZ_CHECK(msg[0] != '\0' && strlen(msg) < sizeof msg);
	}

	char *user = user_json(body, size);
	if (user) {
		json_object *u = json_tokener_parse(user);
		FUZZ_CHECK(u && json_object_is_type(u, json_type_object));
		json_object_put(u);
		free(user);
	}
	free(body);
	return 0;
}

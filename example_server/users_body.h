/*
 * users_body.h: the example server's parsing of request bodies and DynamoDB items, kept
 * apart from users_server.c so that tests/fuzz/ can feed it arbitrary bytes. Part of the
 * example, not of the library.
 */
#ifndef USERS_BODY_H
#define USERS_BODY_H

#include <json-c/json.h>
#include <stddef.h>

/* A PUT /users/{id} body of len bytes followed by a NUL (body[len] == '\0'): strict
 * UTF-8, one JSON object and only whitespace after it, no escaped lone surrogate, "name"
 * and "email" strings without NULs. 0 with *obj (the caller's, to json_object_put) and
 * *name and *email pointing into it; or -1 with *obj NULL and msg (what is wrong, for a
 * 400 answer). */
int users_body_parse(const char *body, size_t len, json_object **obj, const char **name,
                     const char **email, char *msg, size_t msg_size);

/* The item (JSON text of len bytes) as the SQLite mode answers a user: "id", "name",
 * "email" first, then any other attribute in the item's order. A malloc'd string, or NULL
 * if the item is not a JSON object (or out of memory). */
char *user_json(const char *item, size_t len);

/* The value of one hex digit, -1 if ch is none (for %XX in bodies and URLs). */
int users_hex_digit(char ch);

#endif

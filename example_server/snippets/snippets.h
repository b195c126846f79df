/* The README's snippets (the .c files of example_server/snippets), compiled and exercised by
 * tests/test_snippets.c. The db_* functions are the application's own. */
#ifndef SCACHE_SNIPPETS_H
#define SCACHE_SNIPPETS_H

#include <scache/scache.h>

char *db_load_user_json(const char *id); /* malloc()ed JSON, NULL if absent */
/* The application's own replies and handler (tests/test_snippets.c has them). */
enum MHD_Result reply_json(struct MHD_Connection *c, const char *json, size_t len);
enum MHD_Result reply_404(struct MHD_Connection *c);
enum MHD_Result reply_502(struct MHD_Connection *c, const char *why);
enum MHD_Result users_handler(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **req_cls);
int db_update_user_name(const char *id, const char *name);

struct MHD_Daemon *start_users_service(uint16_t port, MHD_AccessHandlerCallback my_handler,
                                       void *my_app, scache_cache **cache_out,
                                       scache_middleware **mw_out);
char *load_and_cache_user(const char *id);
int user_is_cached(const char *id);
char *get_user(const char *id, int *hit);
int rename_user(const char *id, const char *name);
scache_dynamodb *open_tables(void);
enum MHD_Result reply_user_7(struct MHD_Connection *connection, scache_dynamodb *db);
scache_middleware *start_with_table_changes(scache_cache *cache);
scache_middleware *start_with_push(scache_cache *cache, MHD_AccessHandlerCallback handler);

#endif

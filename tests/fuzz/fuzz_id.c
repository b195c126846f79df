/*
 * fuzz_id.c: data-ID strings (lib/id.c, wire-formats 1). The input is parsed as a data-ID
 * string; a parsed ID is encoded again (scache_id_encode, sized then written, and
 * scache_id_encode_alloc) and that canonical string must parse back to the same (source,
 * id) and encode to the same bytes. The input is also split at its first NUL into a
 * (source, id) pair that must survive encode then parse unchanged.
 */
#include "fuzz.h"

#include <string.h>

#include "scache/id.h"

static void round_trip(const char *source, size_t source_len, const char *id, size_t id_len)
{
	size_t need = scache_id_encode(source, source_len, id, id_len, NULL, 0);
	char *buf = malloc(need + 1);
	if (!buf)
		return;
	FUZZ_CHECK(scache_id_encode(source, source_len, id, id_len, buf, need + 1) == need);
	FUZZ_CHECK(buf[need] == '\0');
	char *a;
	size_t alen;
	scache_err err = scache_id_encode_alloc(source, source_len, id, id_len, &a, &alen);
	FUZZ_CHECK(err == SCACHE_OK || err == SCACHE_ENOMEM);
	if (err == SCACHE_OK) {
		FUZZ_CHECK(alen == need && memcmp(a, buf, need + 1) == 0);
		free(a);
	}
	scache_id back;
	err = scache_id_parse(buf, need, &back);
	FUZZ_CHECK(err == SCACHE_OK || err == SCACHE_ENOMEM);
	if (err == SCACHE_OK) {
		FUZZ_CHECK(back.source_len == source_len && back.id_len == id_len);
		FUZZ_CHECK(memcmp(back.source, source, source_len) == 0);
		FUZZ_CHECK(memcmp(back.id, id, id_len) == 0);
		FUZZ_CHECK(back.source[source_len] == '\0' && back.id[id_len] == '\0');
		scache_id_clear(&back);
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	scache_id parsed;
	scache_err err = scache_id_parse(size ? s : "", size, &parsed);
	FUZZ_CHECK(err == SCACHE_OK || err == SCACHE_EMALFORMED || err == SCACHE_ENOTID ||
	           err == SCACHE_ENOMEM);
	if (err == SCACHE_OK) {
		round_trip(parsed.source, parsed.source_len, parsed.id, parsed.id_len);
		scache_id_clear(&parsed);
	} else {
		FUZZ_CHECK(parsed.source == NULL && parsed.id == NULL);
	}
	const char *nul = size ? memchr(s, '\0', size) : NULL;
	size_t cut = nul ? (size_t)(nul - s) : size / 2;
	round_trip(size ? s : "", cut, size ? s + cut + (nul != NULL) : "",
	           size - cut - (nul != NULL));
	return 0;
}

/*
 * version.c: the version of the library loaded, from the generated scache/version.h.
 */
#include "scache/version.h"

unsigned scache_version(void)
{
	return SCACHE_VERSION_HEX;
}

const char *scache_version_string(void)
{
	return SCACHE_VERSION_STRING;
}

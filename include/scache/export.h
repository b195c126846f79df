/*
 * export.h: what leaves the shared library. libscache is built with hidden visibility
 * (-fvisibility=hidden); only functions marked SCACHE_EXTERN, every one of them declared
 * in a public header, are exported. tests/exports_check.sh holds the release library to
 * that.
 */
#ifndef SCACHE_EXPORT_H
#define SCACHE_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define SCACHE_EXTERN __attribute__((visibility("default")))
#else
#define SCACHE_EXTERN
#endif

#endif

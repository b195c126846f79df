/*
 * publish.h: private interface of the publisher (lib/publish.c): creation from resolved
 * settings, for the Kinesis source, and helpers for tests and tools.
 */
#ifndef SCACHE_PUBLISH_H
#define SCACHE_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "kinesis.h"
#include "scache/stream.h"

/* Kinesis PutRecords limits (AWS documentation), partition keys included. */
#define PUBLISH_CALL_MAX_RECORDS  500
#define PUBLISH_CALL_MAX_BYTES    ((size_t)5 << 20)
#define PUBLISH_RECORD_MAX_BYTES  ((size_t)1 << 20)
#define PUBLISH_PARTITION_KEY_LEN 64

/* publisher_new: scache_publisher_new with settings already resolved (copied). */
scache_err publisher_new(const kinesis_settings *s, scache_publisher **out, char *errbuf,
                         size_t errlen);

/* publish_keys_why: scache_publish_keys, and on failure the first failed key's reason
 * (the AWS error name and message tell the story), else the error's name, in errbuf.
 * What a source's publish op does. */
scache_err publish_keys_why(scache_publisher *pub, const char *const *keys, const size_t *lens,
                            size_t n, char *errbuf, size_t errlen);

/* A random partition key: 64 lower-case hex digits and a NUL. */
void publish_partition_key(char out[PUBLISH_PARTITION_KEY_LEN + 1]);

/* publish_pack_calls: split records of record_sizes[] (data + partition key) into
 * PutRecords calls within PUBLISH_CALL_MAX_RECORDS and PUBLISH_CALL_MAX_BYTES. starts[]
 * (n slots) receives the first record of each call; returns the number of calls. */
size_t publish_pack_calls(const size_t *record_sizes, size_t n, size_t *starts);

/* HTTP calls made by a publisher's publishes that have returned (for tests and
 * benchmarks). */
uint64_t publish_calls(scache_publisher *p);

#endif

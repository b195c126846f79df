/*
 * reader.h: private interface of the reader (lib/reader.c): creation from resolved
 * settings, for the Kinesis source, and hooks for tests and benchmarks.
 */
#ifndef SCACHE_READER_H
#define SCACHE_READER_H

#include <stddef.h>
#include <stdint.h>

#include "kinesis.h"
#include "scache/stream.h"

/* reader_new: scache_reader_new with settings already resolved (copied). */
scache_err reader_new(const kinesis_settings *s, scache_start_at start,
                      const scache_reader_callbacks *callbacks, scache_reader **out, char *errbuf,
                      size_t errlen);

/* Test hooks: call them only while no poll is in flight. */

/* Pretend the stream keeps records for retention_s seconds (the reader reads
 * RetentionPeriodHours at creation), with margin_s of caution before that. */
void reader_test_set_retention(scache_reader *r, double retention_s, double margin_s);

/* Replace every shard's current iterator with `replacement` (an invalid or expired
 * iterator); returns how many were replaced. */
size_t reader_test_spoil_iterators(scache_reader *r, const char *replacement);

/* Copy up to max shard IDs and positions (last sequence number read, "" when none,
 * "finished" for a shard read to its end); returns how many. */
size_t reader_test_positions(scache_reader *r, char (*ids)[64], char (*seqs)[128], size_t max);

/* New HTTP connections the reader's client opened so far. */
uint64_t reader_test_connects(scache_reader *r);

/* Bound one ListShards listing at max_pages pages and max_shards shards (1000 and
 * 100000 otherwise). */
void reader_test_set_list_limits(scache_reader *r, size_t max_pages, size_t max_shards);

/* Drop a message repeating within `seconds` (30 otherwise). */
void reader_test_set_log_repeat(scache_reader *r, double seconds);

#endif

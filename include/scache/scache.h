/*
 * libscache: an in-process cache for libmicrohttpd services that stays correct
 * across many instances, because every change is announced as an invalidation on an
 * Amazon Kinesis stream that each instance drains before serving a request.
 *
 * This umbrella header includes every public header. Each header documents its
 * functions: ownership, threads and errors.
 */
#ifndef SCACHE_SCACHE_H
#define SCACHE_SCACHE_H

#include "scache/version.h" /* generated: in the build tree, not beside this file */
#include "error.h"
#include "id.h"
#include "cache.h"
#include "source.h"
#include "stream.h"
#include "middleware.h"
#include "dynamodb.h"

#endif

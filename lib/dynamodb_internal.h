/*
 * dynamodb_internal.h: private to lib/dynamodb.c and its tests: DynamoDB as the AWS client
 * core (aws.h) sees it, and a counter the tests read. Nothing here is installed or stable.
 */
#ifndef SCACHE_DYNAMODB_INTERNAL_H
#define SCACHE_DYNAMODB_INTERNAL_H

#include <stdint.h>

#include "aws.h"
#include "scache/dynamodb.h"

/* DynamoDB for the AWS client core: "dynamodb", DynamoDB_20120810, JSON 1.0,
 * AWS_ENDPOINT_URL_DYNAMODB. */
extern const aws_service dynamodb_service;

/* HTTP calls (GetItem attempts, retries included) the client made since creation. Any
 * thread. */
uint64_t dynamodb_calls(scache_dynamodb *db);

/* The endpoint the client calls, as resolved (config, environment, default). */
const char *dynamodb_endpoint(const scache_dynamodb *db);

#endif

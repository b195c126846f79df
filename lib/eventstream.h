/*
 * eventstream.h: private interface of the decoder of AWS's binary event-stream framing
 * (lib/eventstream.c), the body of a SubscribeToShard answer
 * (application/vnd.amazon.eventstream).
 *
 * One message on the wire, every integer big-endian:
 *
 *   total length (4) | headers length (4) | prelude CRC32 (4, of the 8 bytes before)
 *   headers (headers length bytes) | payload | message CRC32 (4, of every byte before)
 *
 * so a message has 16 bytes of overhead, and the payload is total - headers - 16 bytes.
 * A header is: name length (1) | name | value type (1) | value, the value's size set by
 * its type (0 true, 1 false: none; 2 byte: 1; 3 short: 2; 4 int: 4; 5 long: 8;
 * 6 bytes and 7 string: a 2-byte length, then that many bytes; 8 timestamp: 8;
 * 9 uuid: 16). The CRC is CRC-32 as gzip computes it (reflected, 0xEDB88320).
 *
 * Kinesis' messages carry string headers: ":message-type" ("event", "exception", or
 * "error"), ":event-type" ("initial-response", "SubscribeToShardEvent"),
 * ":exception-type" (e.g. "ResourceInUseException"), ":error-code"/":error-message"
 * for "error", and ":content-type"; the payload is JSON.
 *
 * The decoder is incremental: bytes are fed as they arrive, split anywhere, and each
 * complete message is handed to a callback, its headers and payload pointing into the
 * decoder's buffer (valid during the call only). A framing error (a CRC that does not
 * match, lengths that contradict each other, a message over the size limit, a header
 * running past its section) is final: the byte stream cannot be resynchronised.
 */
#ifndef SCACHE_EVENTSTREAM_H
#define SCACHE_EVENTSTREAM_H

#include <stddef.h>
#include <stdint.h>

/* The overhead of a message: prelude (8), prelude CRC (4), message CRC (4). */
#define ES_OVERHEAD 16
/* The default bound of one message, and of its headers (the limits AWS's own
 * event-stream decoders keep: 16 MiB a message, 128 KiB of headers). */
#define ES_MAX_MESSAGE (16u << 20)
#define ES_MAX_HEADERS (128u << 10)
/* Headers kept per message (more is a framing error). */
#define ES_MAX_HEADER_COUNT 32

enum es_value_type {
	ES_TRUE = 0,
	ES_FALSE = 1,
	ES_BYTE = 2,
	ES_SHORT = 3,
	ES_INT = 4,
	ES_LONG = 5,
	ES_BYTES = 6,
	ES_STRING = 7,
	ES_TIMESTAMP = 8,
	ES_UUID = 9
};

typedef struct es_header {
	const char *name; /* not NUL-terminated */
	size_t name_len;
	uint8_t type;      /* es_value_type */
	const char *value; /* the value's bytes (for strings and bytes, after the length) */
	size_t value_len;
} es_header;

typedef struct es_message {
	es_header headers[ES_MAX_HEADER_COUNT];
	size_t nheaders;
	const unsigned char *payload;
	size_t payload_len;
} es_message;

/* Told each complete message; returns 0 to go on, non-zero to stop decoding (the
 * decoder then fails with ES_ESTOPPED, the rest of the bytes not read). */
typedef int (*es_message_fn)(void *arg, const es_message *m);

typedef enum es_err {
	ES_OK = 0,
	ES_EPRELUDE_CRC, /* the prelude's CRC does not match */
	ES_EMESSAGE_CRC, /* the message's CRC does not match */
	ES_ELENGTH,      /* lengths contradict each other, or exceed the limits */
	ES_EHEADER,      /* a header runs past its section, or an unknown value type */
	ES_ENOMEM,
	ES_ETRUNCATED, /* the stream ended inside a message (es_decoder_finish) */
	ES_ESTOPPED    /* the callback asked to stop */
} es_err;

typedef struct es_decoder {
	unsigned char *buf;
	size_t len, cap;
	size_t max_message; /* [ES_MAX_MESSAGE] */
	es_err err;         /* sticky: the first error */
	char why[160];      /* what failed, for messages */
	uint64_t messages;  /* messages decoded */
} es_decoder;

/* es_decoder_init: an empty decoder taking messages of at most max_message bytes
 * (0: ES_MAX_MESSAGE). es_decoder_free frees its buffer (not the struct). */
void es_decoder_init(es_decoder *d, size_t max_message);
void es_decoder_free(es_decoder *d);

/*
 * es_decoder_feed: decode n more bytes of the stream, calling fn for each message
 * completed by them, in order. Returns ES_OK, or the (sticky) error: once an error
 * occurred every later feed returns it at once. d->why says what failed.
 */
es_err es_decoder_feed(es_decoder *d, const void *data, size_t n, es_message_fn fn, void *arg);

/* es_decoder_finish: the stream ended: ES_ETRUNCATED when it ended inside a message,
 * else the sticky error (ES_OK). */
es_err es_decoder_finish(es_decoder *d);

/* Bytes of an incomplete message held now. */
size_t es_decoder_pending(const es_decoder *d);

/* es_strerror: words for an es_err. */
const char *es_strerror(es_err err);

/* es_header_str: the value of the string header `name` of m, its length in *len; NULL
 * when m has no such header, or it is not a string. */
const char *es_header_str(const es_message *m, const char *name, size_t *len);

/* es_header_is: whether m's string header `name` equals value. */
int es_header_is(const es_message *m, const char *name, const char *value);

/* What a message is, by its ":message-type" header. */
typedef enum es_kind {
	ES_KIND_UNKNOWN = 0, /* no ":message-type", or one not below */
	ES_KIND_EVENT,       /* "event": its type is ":event-type" */
	ES_KIND_EXCEPTION,   /* "exception": a modelled error, ":exception-type" */
	ES_KIND_ERROR        /* "error": an unmodelled one, ":error-code" (":error-message") */
} es_kind;

/* es_classify: m's kind, and the value of the header naming its type (":event-type",
 * ":exception-type" or ":error-code") into *type and *type_len ("" and 0 when absent). */
es_kind es_classify(const es_message *m, const char **type, size_t *type_len);

/* CRC-32 (gzip's): es_crc32(0, p, n); chain by passing the previous result. */
uint32_t es_crc32(uint32_t crc, const void *p, size_t n);

/*
 * es_encode: one message with n string headers (names[i] = values[i]) and the payload,
 * into out (malloc'ed; free it) and *out_len. For tests and fault injection (the service
 * encodes, the library only decodes). -1 when out of memory or a name or value is too
 * long for its length field.
 */
int es_encode(const char *const *names, const char *const *values, size_t n, const void *payload,
              size_t payload_len, unsigned char **out, size_t *out_len);

#endif

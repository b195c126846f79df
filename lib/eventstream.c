/*
 * eventstream.c: the decoder of AWS's event-stream framing (see eventstream.h for the
 * format). Bytes are appended to one buffer; each time it holds a whole message the
 * message is checked (prelude CRC as soon as the 12-byte prelude is in, so a corrupt
 * length is refused before the decoder waits for, or allocates, what it announces; then
 * the message CRC, then the headers walk) and handed to the callback, and the buffer is
 * shifted. Messages are small (a SubscribeToShardEvent a second, up to a few MiB), so a
 * copy into one buffer is simpler than parsing in place across reads and costs little.
 */
#include "eventstream.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static uint32_t crc_table[256];
static int crc_ready;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
	__atomic_store_n(&crc_ready, 1, __ATOMIC_RELEASE);
}

uint32_t es_crc32(uint32_t crc, const void *p, size_t n)
{
	/* the table is the same whoever computes it: a race only repeats the work */
	if (!__atomic_load_n(&crc_ready, __ATOMIC_ACQUIRE))
		crc_init();
	const unsigned char *b = p;
	crc = ~crc;
	while (n--)
		crc = crc_table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

void es_decoder_init(es_decoder *d, size_t max_message)
{
	memset(d, 0, sizeof *d);
	d->max_message = max_message ? max_message : ES_MAX_MESSAGE;
}

void es_decoder_free(es_decoder *d)
{
	if (!d)
		return;
	free(d->buf);
	d->buf = NULL;
	d->len = d->cap = 0;
}

const char *es_strerror(es_err err)
{
	switch (err) {
	case ES_OK:
		return "no error";
	case ES_EPRELUDE_CRC:
		return "prelude CRC mismatch";
	case ES_EMESSAGE_CRC:
		return "message CRC mismatch";
	case ES_ELENGTH:
		return "bad message length";
	case ES_EHEADER:
		return "malformed header";
	case ES_ENOMEM:
		return "out of memory";
	case ES_ETRUNCATED:
		return "stream ended inside a message";
	case ES_ESTOPPED:
		return "stopped by the caller";
	}
	return "unknown event-stream error";
}

static es_err fail(es_decoder *d, es_err err, const char *why)
{
	d->err = err;
	util_fmt(d->why, sizeof d->why, "%s", why);
	return err;
}

/* The size of a value of type t at p (end: the end of the headers), or -1. */
static long value_size(uint8_t t, const unsigned char *p, const unsigned char *end)
{
	switch (t) {
	case ES_TRUE:
	case ES_FALSE:
		return 0;
	case ES_BYTE:
		return 1;
	case ES_SHORT:
		return 2;
	case ES_INT:
		return 4;
	case ES_LONG:
	case ES_TIMESTAMP:
		return 8;
	case ES_UUID:
		return 16;
	case ES_BYTES:
	case ES_STRING:
		if (end - p < 2)
			return -1;
		return 2 + ((long)p[0] << 8 | p[1]);
	}
	return -1;
}

/* Walk the headers section [p, end) into m. */
static es_err parse_headers(es_decoder *d, const unsigned char *p, const unsigned char *end,
                            es_message *m)
{
	m->nheaders = 0;
	while (p < end) {
		if (m->nheaders == ES_MAX_HEADER_COUNT)
			return fail(d, ES_EHEADER, "more headers than the decoder keeps");
		es_header *h = &m->headers[m->nheaders];
		size_t nl = *p++;
		if (nl == 0 || (size_t)(end - p) < nl + 1)
			return fail(d, ES_EHEADER, "header name runs past the headers");
		h->name = (const char *)p;
		h->name_len = nl;
		p += nl;
		h->type = *p++;
		long vs = value_size(h->type, p, end);
		if (vs < 0)
			return fail(d, ES_EHEADER, "header of unknown value type, or cut");
		if ((long)(end - p) < vs)
			return fail(d, ES_EHEADER, "header value runs past the headers");
		int lenfield = h->type == ES_BYTES || h->type == ES_STRING;
		h->value = (const char *)p + (lenfield ? 2 : 0);
		h->value_len = (size_t)vs - (lenfield ? 2 : 0);
		p += vs;
		m->nheaders++;
	}
	return ES_OK;
}

/* Check the prelude of the message at the buffer's start (12 bytes present). */
static es_err check_prelude(es_decoder *d, uint32_t *total, uint32_t *hlen)
{
	*total = be32(d->buf);
	*hlen = be32(d->buf + 4);
	if (es_crc32(0, d->buf, 8) != be32(d->buf + 8))
		return fail(d, ES_EPRELUDE_CRC, "prelude CRC does not match");
	if (*total < ES_OVERHEAD || *hlen > *total - ES_OVERHEAD)
		return fail(d, ES_ELENGTH, "headers longer than the message");
	if (*total > d->max_message || *hlen > ES_MAX_HEADERS)
		return fail(d, ES_ELENGTH, "message larger than the decoder accepts");
	return ES_OK;
}

static int reserve(es_decoder *d, size_t need)
{
	if (need <= d->cap)
		return 1;
	size_t cap = d->cap ? d->cap : 4096;
	while (cap < need)
		cap *= 2;
	unsigned char *b = realloc(d->buf, cap);
	if (!b)
		return 0;
	d->buf = b;
	d->cap = cap;
	return 1;
}

es_err es_decoder_feed(es_decoder *d, const void *data, size_t n, es_message_fn fn, void *arg)
{
	const unsigned char *in = data;
	if (d->err)
		return d->err;
	while (n > 0 || d->len >= 12) {
		/* how much the message at the buffer's start needs: its prelude first */
		size_t want = 12;
		uint32_t total = 0, hlen = 0;
		if (d->len >= 12) {
			if (check_prelude(d, &total, &hlen))
				return d->err;
			want = total;
		}
		if (d->len < want) {
			if (n == 0)
				break;
			size_t take = want - d->len < n ? want - d->len : n;
			if (!reserve(d, d->len + take))
				return fail(d, ES_ENOMEM, "out of memory");
			memcpy(d->buf + d->len, in, take);
			d->len += take;
			in += take;
			n -= take;
			continue;
		}
		/* a whole message */
		if (es_crc32(0, d->buf, total - 4) != be32(d->buf + total - 4))
			return fail(d, ES_EMESSAGE_CRC, "message CRC does not match");
		es_message m;
		const unsigned char *h = d->buf + 12;
		if (parse_headers(d, h, h + hlen, &m))
			return d->err;
		m.payload = h + hlen;
		m.payload_len = total - hlen - ES_OVERHEAD;
		d->messages++;
		int stop = fn ? fn(arg, &m) : 0;
		memmove(d->buf, d->buf + total, d->len - total);
		d->len -= total;
		if (stop)
			return fail(d, ES_ESTOPPED, "stopped by the caller");
	}
	return ES_OK;
}

es_err es_decoder_finish(es_decoder *d)
{
	if (d->err)
		return d->err;
	if (d->len)
		return fail(d, ES_ETRUNCATED, "stream ended inside a message");
	return ES_OK;
}

size_t es_decoder_pending(const es_decoder *d)
{
	return d->len;
}

const char *es_header_str(const es_message *m, const char *name, size_t *len)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < m->nheaders; i++) {
		const es_header *h = &m->headers[i];
		if (h->type == ES_STRING && h->name_len == nl && !memcmp(h->name, name, nl)) {
			if (len)
				*len = h->value_len;
			return h->value;
		}
	}
	return NULL;
}

int es_header_is(const es_message *m, const char *name, const char *value)
{
	size_t len;
	const char *v = es_header_str(m, name, &len);
	return v && len == strlen(value) && !memcmp(v, value, len);
}

es_kind es_classify(const es_message *m, const char **type, size_t *type_len)
{
	static const struct {
		const char *message_type, *type_header;
		es_kind kind;
	} kinds[] = {{"event", ":event-type", ES_KIND_EVENT},
	             {"exception", ":exception-type", ES_KIND_EXCEPTION},
	             {"error", ":error-code", ES_KIND_ERROR}};
	*type = "";
	*type_len = 0;
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		if (!es_header_is(m, ":message-type", kinds[i].message_type))
			continue;
		size_t len;
		const char *t = es_header_str(m, kinds[i].type_header, &len);
		if (t) {
			*type = t;
			*type_len = len;
		}
		return kinds[i].kind;
	}
	return ES_KIND_UNKNOWN;
}

int es_encode(const char *const *names, const char *const *values, size_t n, const void *payload,
              size_t payload_len, unsigned char **out, size_t *out_len)
{
	size_t hlen = 0;
	for (size_t i = 0; i < n; i++) {
		size_t nl = strlen(names[i]), vl = strlen(values[i]);
		if (nl == 0 || nl > 255 || vl > 0xffff)
			return -1;
		hlen += 1 + nl + 1 + 2 + vl;
	}
	size_t total = ES_OVERHEAD + hlen + payload_len;
	if (total > 0xffffffffu)
		return -1;
	unsigned char *b = malloc(total), *p = b;
	if (!b)
		return -1;
	put_be32(p, (uint32_t)total);
	put_be32(p + 4, (uint32_t)hlen);
	put_be32(p + 8, es_crc32(0, p, 8));
	p += 12;
	for (size_t i = 0; i < n; i++) {
		size_t nl = strlen(names[i]), vl = strlen(values[i]);
		*p++ = (unsigned char)nl;
		memcpy(p, names[i], nl);
		p += nl;
		*p++ = ES_STRING;
		*p++ = (unsigned char)(vl >> 8);
		*p++ = (unsigned char)vl;
		memcpy(p, values[i], vl);
		p += vl;
	}
	if (payload_len)
		memcpy(p, payload, payload_len);
	p += payload_len;
	put_be32(p, es_crc32(0, b, total - 4));
	*out = b;
	*out_len = total;
	return 0;
}

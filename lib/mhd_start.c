/*
 * mhd_start.c: scache_mhd_start, one call that starts a libmicrohttpd daemon wired to
 * the middleware, so the wiring mistakes that otherwise pass silently (no completion
 * callback: a leak and no lines) or abort later (config.suspend without
 * MHD_ALLOW_SUSPEND_RESUME) cannot happen, and the one that makes a server crawl (strict
 * waits on a single thread) is said at startup.
 *
 * The caller's options come as a va_list, and a va_list cannot be extended: they are
 * read into an MHD_OptionItem array (by the argument types libmicrohttpd 0.9.75's
 * parse_options_va reads, and the conversions its MHD_OPTION_ARRAY applies), checked,
 * and passed on as MHD_OPTION_ARRAY after the middleware's own. An option this file does
 * not know cannot be skipped (its arguments' sizes are unknown), so it is refused, named.
 */
#include "middleware_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* How an option's arguments are read from the va_list. */
typedef enum arg_kind {
	ARG_UNKNOWN = 0,
	ARG_SIZE,     /* size_t */
	ARG_UINT,     /* unsigned int */
	ARG_INT,      /* int, an enum, an MHD_socket */
	ARG_PTR,      /* one pointer */
	ARG_PTR_PTR,  /* a function pointer and its closure */
	ARG_SIZE_PTR, /* size_t, then a pointer */
	ARG_ARRAY     /* a nested MHD_OPTION_ARRAY */
} arg_kind;

static arg_kind option_kind(int opt)
{
	switch (opt) {
	case MHD_OPTION_CONNECTION_MEMORY_LIMIT:
	case MHD_OPTION_CONNECTION_MEMORY_INCREMENT:
	case MHD_OPTION_THREAD_STACK_SIZE:
		return ARG_SIZE;
	case MHD_OPTION_NONCE_NC_SIZE:
	case MHD_OPTION_CONNECTION_LIMIT:
	case MHD_OPTION_CONNECTION_TIMEOUT:
	case MHD_OPTION_PER_IP_CONNECTION_LIMIT:
	case MHD_OPTION_THREAD_POOL_SIZE:
	case MHD_OPTION_TCP_FASTOPEN_QUEUE_SIZE:
	case MHD_OPTION_LISTENING_ADDRESS_REUSE:
	case MHD_OPTION_LISTEN_BACKLOG_SIZE:
	case MHD_OPTION_SERVER_INSANITY:
		return ARG_UINT;
	case MHD_OPTION_HTTPS_CRED_TYPE:
	case MHD_OPTION_LISTEN_SOCKET:
	case MHD_OPTION_STRICT_FOR_CLIENT:
	case MHD_OPTION_SIGPIPE_HANDLED_BY_APP:
	case MHD_OPTION_TLS_NO_ALPN:
		return ARG_INT;
	case MHD_OPTION_SOCK_ADDR:
	case MHD_OPTION_HTTPS_MEM_KEY:
	case MHD_OPTION_HTTPS_KEY_PASSWORD:
	case MHD_OPTION_HTTPS_MEM_CERT:
	case MHD_OPTION_HTTPS_MEM_TRUST:
	case MHD_OPTION_HTTPS_MEM_DHPARAMS:
	case MHD_OPTION_HTTPS_PRIORITIES:
	case MHD_OPTION_HTTPS_CERT_CALLBACK:
	case MHD_OPTION_HTTPS_CERT_CALLBACK2:
		return ARG_PTR;
	case MHD_OPTION_NOTIFY_COMPLETED:
	case MHD_OPTION_NOTIFY_CONNECTION:
	case MHD_OPTION_URI_LOG_CALLBACK:
	case MHD_OPTION_EXTERNAL_LOGGER:
	case MHD_OPTION_UNESCAPE_CALLBACK:
	case MHD_OPTION_GNUTLS_PSK_CRED_HANDLER:
		return ARG_PTR_PTR;
	case MHD_OPTION_DIGEST_AUTH_RANDOM:
		return ARG_SIZE_PTR;
	case MHD_OPTION_ARRAY:
		return ARG_ARRAY;
	default:
		return ARG_UNKNOWN;
	}
}

/* The options read so far, and what start needs to know of them. */
typedef struct options {
	struct MHD_OptionItem *items;
	size_t n, cap;
	unsigned pool_size; /* the last MHD_OPTION_THREAD_POOL_SIZE, 0 if none */
	char problem[256];  /* the first reason to refuse */
} options;

static int options_push(options *o, struct MHD_OptionItem item)
{
	if (o->n == o->cap) {
		size_t cap = o->cap ? 2 * o->cap : 16;
		struct MHD_OptionItem *p = realloc(o->items, cap * sizeof *p);
		if (!p)
			return -1;
		o->items = p;
		o->cap = cap;
	}
	o->items[o->n++] = item;
	return 0;
}

/* Note what matters of one option (also inside nested arrays); 0, or -1 to refuse. */
static int options_check(options *o, int opt, intptr_t value)
{
	if (opt == MHD_OPTION_NOTIFY_COMPLETED) {
		snprintf(o->problem, sizeof o->problem,
		         "MHD_OPTION_NOTIFY_COMPLETED among the options: the middleware's "
		         "scache_request_completed must be the daemon's completion callback; put "
		         "yours in config.completed (it is chained, with your req_cls)");
		return -1;
	}
	if (opt == MHD_OPTION_THREAD_POOL_SIZE)
		o->pool_size = (unsigned)value;
	return 0;
}

/* The items of a caller's MHD_OPTION_ARRAY (read, not copied: it is passed on as is). */
static int options_check_array(options *o, const struct MHD_OptionItem *a, int depth)
{
	for (; a && a->option != MHD_OPTION_END; a++) {
		if (a->option == MHD_OPTION_ARRAY) {
			if (depth > 8 || options_check_array(o, a->ptr_value, depth + 1))
				return -1;
		} else if (options_check(o, a->option, a->value)) {
			return -1;
		}
	}
	return 0;
}

/* Read the va_list's options up to MHD_OPTION_END into o->items (not terminated). */
static int options_read(options *o, va_list ap)
{
	for (;;) {
		int opt = va_arg(ap, int);
		if (opt == MHD_OPTION_END)
			return 0;
		struct MHD_OptionItem it = {.option = (enum MHD_OPTION)opt};
		switch (option_kind(opt)) {
		case ARG_SIZE:
			it.value = (intptr_t)va_arg(ap, size_t);
			break;
		case ARG_UINT:
			it.value = (intptr_t)va_arg(ap, unsigned int);
			break;
		case ARG_INT:
			it.value = (intptr_t)va_arg(ap, int);
			break;
		case ARG_PTR:
			it.ptr_value = va_arg(ap, void *);
			break;
		case ARG_PTR_PTR: /* MHD_OPTION_ARRAY carries the function in value */
			it.value = (intptr_t)va_arg(ap, void *);
			it.ptr_value = va_arg(ap, void *);
			break;
		case ARG_SIZE_PTR:
			it.value = (intptr_t)va_arg(ap, size_t);
			it.ptr_value = va_arg(ap, void *);
			break;
		case ARG_ARRAY:
			it.ptr_value = va_arg(ap, struct MHD_OptionItem *);
			if (options_check_array(o, it.ptr_value, 0))
				return -1;
			break;
		case ARG_UNKNOWN:
			snprintf(
			    o->problem, sizeof o->problem,
			    "option %d is not one libmicrohttpd 0.9.75 defines, so its arguments "
			    "cannot be read: pass it inside an MHD_OPTION_ARRAY",
			    opt);
			return -1;
		}
		if (options_check(o, opt, it.value))
			return -1;
		if (options_push(o, it)) {
			snprintf(o->problem, sizeof o->problem, "out of memory");
			return -1;
		}
	}
}

static void refuse(scache_middleware *mw, const char *why)
{
	char msg[400];
	snprintf(msg, sizeof msg, "scache_mhd_start: no daemon started: %s", why);
	efficiency_warning(mw, msg);
}

/* Strict waits served by one thread: every request that finds anything cached waits for
 * the next poll while no other request runs. */
static void warn_if_serialised(scache_middleware *mw, unsigned flags, unsigned pool_size)
{
	if (mw->cfg.poll_interval_ms || mw->cfg.suspend)
		return;
	if ((flags & MHD_USE_THREAD_PER_CONNECTION) ||
	    ((flags & MHD_USE_INTERNAL_POLLING_THREAD) && pool_size > 1))
		return;
	char msg[512];
	snprintf(msg, sizeof msg,
	         "one thread serves every connection (%s) in strict mode without .suspend: a "
	         "request that finds anything cached waits for the next poll while no other "
	         "request is served, about %u requests a second in all. Set .suspend = 1 "
	         "(requests wait parked), start a thread pool (MHD_OPTION_THREAD_POOL_SIZE) "
	         "with .suspend, or choose bounded staleness (poll_interval_ms > 0)",
	         (flags & MHD_USE_INTERNAL_POLLING_THREAD) ? "an internal polling thread"
	                                                   : "external select",
	         mw->cfg.max_polls_per_second);
	efficiency_warning(mw, msg);
}

struct MHD_Daemon *scache_mhd_start_va(scache_middleware *mw, unsigned int flags, unsigned int port,
                                       va_list ap)
{
	if (!mw)
		return NULL;
	if (port > UINT16_MAX) {
		char why[64];
		snprintf(why, sizeof why, "port %u is above 65535", port);
		refuse(mw, why);
		return NULL;
	}
	options o = {0};
	if (options_read(&o, ap)) {
		refuse(mw, o.problem);
		free(o.items);
		return NULL;
	}
	if (o.pool_size > 1 && (!(flags & MHD_USE_INTERNAL_POLLING_THREAD) ||
	                        (flags & MHD_USE_THREAD_PER_CONNECTION))) {
		refuse(mw,
		       "MHD_OPTION_THREAD_POOL_SIZE needs MHD_USE_INTERNAL_POLLING_THREAD (or "
		       "MHD_USE_AUTO_INTERNAL_THREAD) and excludes MHD_USE_THREAD_PER_CONNECTION");
		free(o.items);
		return NULL;
	}
	if (mw->cfg.suspend)
		flags |= MHD_ALLOW_SUSPEND_RESUME;
	struct MHD_OptionItem end = {.option = MHD_OPTION_END};
	if (options_push(&o, end)) {
		refuse(mw, "out of memory");
		free(o.items);
		return NULL;
	}
	errno = 0;
	struct MHD_Daemon *d = MHD_start_daemon(
	    flags, (uint16_t)port, NULL, NULL, &scache_access_handler, mw, MHD_OPTION_ARRAY,
	    o.items, MHD_OPTION_NOTIFY_COMPLETED, &scache_request_completed, mw, MHD_OPTION_END);
	int err = errno;
	free(o.items); /* MHD copied what it keeps */
	if (!d) {
		char why[200], reason[128] = "no reason given";
		if (err && strerror_r(err, reason, sizeof reason) != 0)
			snprintf(reason, sizeof reason, "error %d", err);
		snprintf(why, sizeof why,
		         "MHD_start_daemon failed (%s; port %u in use, or flags or options it "
		         "refuses: libmicrohttpd says which on stderr)",
		         reason, port);
		refuse(mw, why);
		return NULL;
	}
	warn_if_serialised(mw, flags, o.pool_size);
	return d;
}

/* port is an unsigned int, not a uint16_t: va_start's last named parameter must be of a
 * type that default argument promotion leaves as it is. */
struct MHD_Daemon *scache_mhd_start(scache_middleware *mw, unsigned int flags, unsigned int port,
                                    ...)
{
	va_list ap;
	va_start(ap, port);
	struct MHD_Daemon *d = scache_mhd_start_va(mw, flags, port, ap);
	va_end(ap);
	return d;
}

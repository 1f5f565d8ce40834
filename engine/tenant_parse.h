/* engine/tenant_parse.h — internal to engine/tenant*.c: the YAML reader the file's
 * checks and index (tenant.c) run after. Nothing else includes it. */
#ifndef RINGLET_ENGINE_TENANT_PARSE_H
#define RINGLET_ENGINE_TENANT_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "engine/tenant.h"

struct parser {
	yaml_parser_t yp;
	yaml_event_t ev;
	bool have; /* ev holds an event to delete */
	const char *path;
	const char *buf; /* the file's bytes */
	size_t len;
	char *err;
	size_t errlen;
	struct tenant_set *set;
	size_t cap; /* of set->t */
};

/* Say what is wrong: "path:line: what", or "path: what" for line 0. */
void perr(struct parser *p, int line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Read the whole stream into p->set (tunnels with their fields, each checked on its own).
 * 0, or -1 with the error said. */
int parse_stream(struct parser *p);

/* Free what one tunnel holds and zero it. */
void tenant_clear(struct tenant *t);

#endif

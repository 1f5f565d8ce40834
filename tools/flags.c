/* tools/flags.c — cobra/pflag-style flag parsing (see flags.h). */
#include "tools/flags.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void errf(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

const char *flags_parse_bool(const char *s, bool *v)
{
	/* The spellings Go's strconv.ParseBool accepts. */
	static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True"};
	static const char *const no[] = {"0", "f", "F", "false", "FALSE", "False"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcmp(s, yes[i])) {
			*v = true;
			return NULL;
		}
		if (!strcmp(s, no[i])) {
			*v = false;
			return NULL;
		}
	}
	return "not a boolean (true, false, 1, 0)";
}

/* Parse a decimal integer made of digits only (no sign, no spaces). */
static const char *parse_digits(const char *s, unsigned long long *v)
{
	unsigned long long x = 0;

	if (!*s)
		return "empty value";
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return "not a number";
		if (x > (ULLONG_MAX - 9) / 10)
			return "number too large";
		x = x * 10 + (unsigned)(*s - '0');
	}
	*v = x;
	return NULL;
}

const char *flags_parse_port(const char *s, uint16_t *port)
{
	unsigned long long v;

	if (parse_digits(s, &v) || v < 1 || v > 65535)
		return "not a port number (1-65535)";
	*port = (uint16_t)v;
	return NULL;
}

static const char *parse_int(const char *s, long long *v)
{
	char *end;
	long long x;

	if (!*s || isspace((unsigned char)*s))
		return "not an integer";
	errno = 0;
	x = strtoll(s, &end, 10);
	if (*end)
		return "not an integer";
	if (errno == ERANGE)
		return "integer out of range";
	*v = x;
	return NULL;
}

const char *flags_parse_duration_ms(const char *s, long long *ms)
{
	static const struct {
		const char *unit;
		double ms;
	} units[] = {
	        /* Longest spellings first so "ms" is not read as "m" followed by "s". */
	        {"ns", 1e-6}, {"us", 1e-3}, {"\xc2\xb5s", 1e-3}, {"ms", 1},
	        {"s", 1e3},   {"m", 60e3},  {"h", 3600e3},
	};
	double total = 0;
	const char *p = s;
	bool any_unit = false;

	if (!*s)
		return "empty duration";
	while (*p) {
		char *end;
		double v;
		size_t i;

		if (!isdigit((unsigned char)*p) && *p != '.')
			return "not a duration (e.g. 30s, 500ms, 2m, 1h30m, or seconds)";
		errno = 0;
		v = strtod(p, &end);
		if (end == p || errno == ERANGE)
			return "not a duration (e.g. 30s, 500ms, 2m, 1h30m, or seconds)";
		p = end;
		if (!*p && !any_unit) {
			/* A bare number is seconds, as inlets' older flags took them. */
			total = v * 1e3;
			break;
		}
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t ul = strlen(units[i].unit);

			if (!strncmp(p, units[i].unit, ul) &&
			    (units[i].unit[0] != 'm' || ul != 1 || p[1] != 's')) {
				total += v * units[i].ms;
				p += ul;
				break;
			}
		}
		if (i == sizeof(units) / sizeof(units[0]))
			return "unknown duration unit (use ms, s, m or h)";
		any_unit = true;
	}
	if (total > (double)INT_MAX)
		return "duration too long";
	*ms = (long long)total;
	return NULL;
}

const char *flags_parse_bytes(const char *s, unsigned long long *bytes)
{
	char num[32];
	const char *p = s;
	unsigned long long v, mult = 1;
	size_t n = 0;

	while (*p >= '0' && *p <= '9' && n < sizeof(num) - 1)
		num[n++] = *p++;
	num[n] = 0;
	if (!n)
		return "not a size (e.g. 262144, 256k, 1m)";
	if (parse_digits(num, &v))
		return "size too large";
	if (*p) {
		const char *unit = p;

		switch (tolower((unsigned char)*p)) {
		case 'b':
			mult = 1;
			break;
		case 'k':
			mult = 1024;
			break;
		case 'm':
			mult = 1024 * 1024;
			break;
		case 'g':
			mult = 1024ull * 1024 * 1024;
			break;
		default:
			return "unknown size unit (use k, m or g: powers of 1024)";
		}
		p++;
		if (mult != 1) {
			/* Accept k, kb, kib (and upper-case spellings): all powers of 1024. */
			if (tolower((unsigned char)*p) == 'i')
				p++;
			if (tolower((unsigned char)*p) == 'b')
				p++;
		}
		if (*p || (mult == 1 && p - unit != 1))
			return "unknown size unit (use k, m or g: powers of 1024)";
	}
	if (v > ULLONG_MAX / mult)
		return "size too large";
	*bytes = v * mult;
	return NULL;
}

void flags_free_strings(char ***v, size_t *n)
{
	if (!v)
		return;
	if (*v) {
		for (size_t i = 0; n && i < *n; i++)
			free((*v)[i]);
		free(*v);
	}
	*v = NULL;
	if (n)
		*n = 0;
}

struct flag *flags_find(struct flag *tab, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(tab[i].name, name))
			return &tab[i];
	return NULL;
}

static struct flag *find_long(struct flag *tab, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(tab[i].name) == len && !strncmp(tab[i].name, name, len))
			return &tab[i];
	return NULL;
}

static struct flag *find_short(struct flag *tab, size_t n, char c)
{
	for (size_t i = 0; i < n; i++)
		if (tab[i].shorthand && tab[i].shorthand == c)
			return &tab[i];
	return NULL;
}

/* Check v against a flag's [min, max] when bounds are set. */
static bool in_bounds(const struct flag *f, long long v)
{
	if (f->min == 0 && f->max == 0)
		return true;
	return v >= f->min && v <= f->max;
}

static const char *bounds_reason(const struct flag *f, char *buf, size_t len)
{
	snprintf(buf, len, "must be between %lld and %lld", f->min, f->max);
	return buf;
}

/* Append one list element (already trimmed, non-empty) to a FLAG_STRINGS or FLAG_PORTS
 * destination. */
static const char *list_add(struct flag *f, const char *item, size_t len)
{
	if (f->type == FLAG_STRINGS) {
		char ***v = f->dst;
		char **nv;
		char *s = strndup(item, len);

		if (!s)
			return "out of memory";
		nv = realloc(*v, (*f->count + 1) * sizeof(*nv));
		if (!nv) {
			free(s);
			return "out of memory";
		}
		nv[(*f->count)++] = s;
		*v = nv;
		return NULL;
	} else {
		uint16_t *ports = f->dst;
		char buf[16];
		uint16_t port;

		if (len >= sizeof(buf))
			return "not a port number (1-65535)";
		memcpy(buf, item, len);
		buf[len] = 0;
		if (flags_parse_port(buf, &port))
			return "not a port number (1-65535)";
		for (size_t i = 0; i < *f->count; i++)
			if (ports[i] == port)
				return NULL;
		if (*f->count >= f->cap)
			return "too many ports";
		ports[(*f->count)++] = port;
		return NULL;
	}
}

/* Store value into f's destination. Returns NULL or the reason the value is bad; buf
 * may be used for the reason's text. */
static const char *flag_set(struct flag *f, const char *value, char *buf, size_t len)
{
	const char *why;

	switch (f->type) {
	case FLAG_STRING: {
		char **dst = f->dst;
		char *s = strdup(value);

		if (!s)
			return "out of memory";
		free(*dst);
		*dst = s;
		return NULL;
	}
	case FLAG_BOOL:
		return flags_parse_bool(value, f->dst);
	case FLAG_INT: {
		long long v;

		if ((why = parse_int(value, &v)))
			return why;
		if (v < INT_MIN || v > INT_MAX)
			return "integer out of range";
		if (!in_bounds(f, v))
			return bounds_reason(f, buf, len);
		*(int *)f->dst = (int)v;
		return NULL;
	}
	case FLAG_PORT:
		return flags_parse_port(value, f->dst);
	case FLAG_DURATION: {
		long long ms;

		if ((why = flags_parse_duration_ms(value, &ms)))
			return why;
		if (!in_bounds(f, ms)) {
			snprintf(buf, len, "must be between %lldms and %lldms", f->min, f->max);
			return buf;
		}
		*(int *)f->dst = (int)ms;
		return NULL;
	}
	case FLAG_BYTES: {
		unsigned long long b;

		if ((why = flags_parse_bytes(value, &b)))
			return why;
		if (b > UINT32_MAX || !in_bounds(f, (long long)b))
			return bounds_reason(f, buf, len);
		*(uint32_t *)f->dst = (uint32_t)b;
		return NULL;
	}
	case FLAG_STRINGS:
	case FLAG_PORTS: {
		const char *p = value;

		for (;;) {
			const char *comma = strchr(p, ',');
			const char *e = comma ? comma : p + strlen(p);
			const char *b = p;

			while (b < e && isspace((unsigned char)*b))
				b++;
			while (e > b && isspace((unsigned char)e[-1]))
				e--;
			if (e > b && (why = list_add(f, b, (size_t)(e - b))))
				return why;
			if (!comma)
				break;
			p = comma + 1;
		}
		return NULL;
	}
	}
	return "unsupported flag type";
}

/* The flag as pflag names it in messages: "-p, --port" or "--url". */
static void flag_display(const struct flag *f, char *buf, size_t len)
{
	if (f->shorthand)
		snprintf(buf, len, "-%c, --%s", f->shorthand, f->name);
	else
		snprintf(buf, len, "--%s", f->name);
}

static int apply(struct flag *f, const char *value, char *err, size_t errlen)
{
	char why_buf[96], name[80];
	const char *why = flag_set(f, value, why_buf, sizeof(why_buf));

	if (why) {
		flag_display(f, name, sizeof(name));
		errf(err, errlen, "invalid argument \"%s\" for \"%s\" flag: %s", value, name,
		     why);
		return -1;
	}
	f->seen++;
	return 0;
}

int flags_parse(struct flag *tab, size_t n, int nargs, char **args, char **pos, int *npos,
                char *err, size_t errlen)
{
	bool only_pos = false;

	*npos = 0;
	for (int i = 0; i < nargs; i++) {
		const char *a = args[i];

		if (only_pos || a[0] != '-' || a[1] == 0) {
			pos[(*npos)++] = args[i];
			continue;
		}
		if (!strcmp(a, "--")) {
			only_pos = true;
			continue;
		}
		if (a[1] == '-') {
			const char *name = a + 2, *eq = strchr(name, '=');
			size_t len = eq ? (size_t)(eq - name) : strlen(name);
			struct flag *f;
			const char *value;

			if (len == 0 || name[0] == '-') {
				errf(err, errlen, "bad flag syntax: %s", a);
				return -1;
			}
			f = find_long(tab, n, name, len);
			if (!f) {
				errf(err, errlen, "unknown flag: --%.*s", (int)len, name);
				return -1;
			}
			if (eq) {
				value = eq + 1;
			} else if (f->type == FLAG_BOOL) {
				value = "true";
			} else if (i + 1 < nargs) {
				value = args[++i];
			} else {
				errf(err, errlen, "flag needs an argument: --%s", f->name);
				return -1;
			}
			if (apply(f, value, err, errlen))
				return -1;
			continue;
		}
		for (const char *s = a + 1; *s; s++) {
			struct flag *f = find_short(tab, n, *s);
			const char *value;
			bool rest_used = true; /* the value used up the rest of this argument */

			if (!f) {
				errf(err, errlen, "unknown shorthand flag: '%c' in %s", *s, a);
				return -1;
			}
			if (s[1] == '=') {
				value = s + 2;
			} else if (f->type == FLAG_BOOL) {
				value = "true";
				rest_used = false;
			} else if (s[1]) {
				value = s + 1;
			} else if (i + 1 < nargs) {
				value = args[++i];
			} else {
				errf(err, errlen, "flag needs an argument: '%c' in %s", *s, a);
				return -1;
			}
			if (apply(f, value, err, errlen))
				return -1;
			if (rest_used)
				break;
		}
	}
	return 0;
}

static const char *type_name(enum flag_type t)
{
	switch (t) {
	case FLAG_STRING:
		return "string";
	case FLAG_BOOL:
		return "";
	case FLAG_INT:
		return "int";
	case FLAG_PORT:
		return "port";
	case FLAG_DURATION:
		return "duration";
	case FLAG_BYTES:
		return "bytes";
	case FLAG_STRINGS:
		return "strings";
	case FLAG_PORTS:
		return "ports";
	}
	return "";
}

static int cmp_flag(const void *a, const void *b)
{
	const struct flag *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

/* Print text word-wrapped so that no line passes width, continuation lines indented by
 * indent columns; the first line starts at column indent. */
static void print_wrapped(FILE *out, const char *text, int indent, int width)
{
	int col = indent;
	const char *p = text;

	if (width - indent < 20)
		width = indent + 20;
	while (*p) {
		size_t wl = strcspn(p, " \n");

		if (col > indent && col + 1 + (int)wl > width) {
			fprintf(out, "\n%*s", indent, "");
			col = indent;
		} else if (col > indent) {
			fputc(' ', out);
			col++;
		}
		fwrite(p, 1, wl, out);
		col += (int)wl;
		p += wl;
		if (*p == '\n') {
			fprintf(out, "\n%*s", indent, "");
			col = indent;
			p++;
		}
		while (*p == ' ')
			p++;
	}
	fputc('\n', out);
}

void flags_print_help(FILE *out, const struct flag *tab, size_t n, int width)
{
	const struct flag **sorted = calloc(n ? n : 1, sizeof(*sorted));
	size_t m = 0;
	int left = 0;

	if (!sorted)
		return;
	for (size_t i = 0; i < n; i++)
		if (!tab[i].hidden)
			sorted[m++] = &tab[i];
	qsort(sorted, m, sizeof(*sorted), cmp_flag);
	for (size_t i = 0; i < m; i++) {
		const char *t = type_name(sorted[i]->type);
		int w = 6 + 2 + (int)strlen(sorted[i]->name) + (*t ? 1 + (int)strlen(t) : 0);

		if (w > left)
			left = w;
	}
	for (size_t i = 0; i < m; i++) {
		const struct flag *f = sorted[i];
		const char *t = type_name(f->type);
		char head[128], desc[1024];
		int hl;

		if (f->shorthand)
			hl = snprintf(head, sizeof(head), "  -%c, --%s%s%s", f->shorthand,
			              f->name, *t ? " " : "", t);
		else
			hl = snprintf(head, sizeof(head), "      --%s%s%s", f->name,
			              *t ? " " : "", t);
		if (f->def && f->type == FLAG_STRING)
			snprintf(desc, sizeof(desc), "%s (default \"%s\")", f->usage, f->def);
		else if (f->def)
			snprintf(desc, sizeof(desc), "%s (default %s)", f->usage, f->def);
		else
			snprintf(desc, sizeof(desc), "%s", f->usage);
		fprintf(out, "%s%*s   ", head, left - hl, "");
		print_wrapped(out, desc, left + 3, width);
	}
	free(sorted);
}

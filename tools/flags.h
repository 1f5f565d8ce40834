/* tools/flags.h — a cobra/pflag-style command-line flag parser.
 *
 * A command describes its flags in a table of struct flag (built at run time, because the
 * destinations usually point into a struct cfg) and hands argv to flags_parse(), which
 * accepts the syntax pflag accepts:
 *
 *   --name=value   --name value   --bool   --bool=true|false|1|0|t|f
 *   -p 80   -p=80   -p80   -hp80 (a run of short booleans, then one valued flag)
 *   --            ends the flags; everything after it is positional
 *   -             alone is positional
 *
 * Boolean flags never take the next argument as their value (`--auto-tls false` sets
 * --auto-tls and leaves "false" as a positional argument), exactly as pflag does.
 * Scalar flags given twice keep the last value; list flags append, and each value may
 * itself be a comma-separated list (`--ports 80,443 --ports 8080`).
 */
#ifndef RINGLET_TOOLS_FLAGS_H
#define RINGLET_TOOLS_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum flag_type {
	FLAG_STRING,   /* dst: char ** (heap; the old value is freed, the new one strdup'ed) */
	FLAG_BOOL,     /* dst: bool * */
	FLAG_INT,      /* dst: int *, within [min, max] */
	FLAG_PORT,     /* dst: uint16_t *, 1..65535 */
	FLAG_DURATION, /* dst: int * in milliseconds: "30s", "500ms", "2m", "1h30m", or seconds
	                */
	FLAG_BYTES,   /* dst: uint32_t *, within [min, max]: "262144", "256k", "256KiB", "1m" */
	FLAG_STRINGS, /* dst: char *** (heap array of heap strings), count: size_t * */
	FLAG_PORTS,   /* dst: uint16_t[cap], count: size_t *; duplicates are kept once */
};

struct flag {
	const char *name; /* long name, without "--" */
	char shorthand;   /* single letter, or 0 */
	enum flag_type type;
	void *dst;
	size_t *count;      /* FLAG_STRINGS, FLAG_PORTS */
	size_t cap;         /* FLAG_PORTS: capacity of dst */
	long long min, max; /* FLAG_INT, FLAG_BYTES, FLAG_DURATION (ms); both 0: no bounds */
	const char *usage;  /* one sentence or more for --help */
	const char *def;    /* the default as shown in --help; NULL: none shown */
	bool hidden;        /* accepted but not listed in --help */
	unsigned seen;      /* set by flags_parse: how many times the flag was given */
};

/* Parse args[0..nargs) (the arguments after the command words) against tab[0..n).
 * Values are stored through the table's destinations as they are met; tab[i].seen counts
 * the occurrences. Positional arguments are stored, in order, in pos[] (which must have
 * room for nargs entries; the strings are args' own) and counted in *npos.
 * Returns 0, or -1 with a message in err such as "unknown flag: --nope",
 * "flag needs an argument: --url" or
 * `invalid argument "x" for "--control-port" flag: not a port number (1-65535)`.
 * On error the destinations may be partly filled; the caller still owns and frees them. */
int flags_parse(struct flag *tab, size_t n, int nargs, char **args, char **pos, int *npos,
                char *err, size_t errlen);

/* Find a flag by long name; NULL if absent. */
struct flag *flags_find(struct flag *tab, size_t n, const char *name);

/* Print the flag listing of tab (cobra's layout: "  -p, --port ports   usage (default x)"),
 * sorted by long name, descriptions aligned and wrapped to width columns. Hidden flags are
 * left out. */
void flags_print_help(FILE *out, const struct flag *tab, size_t n, int width);

/* Parse one value of the given type, as flags_parse would (exposed for tests and for the
 * status command). Return NULL or a static reason ("not a port number (1-65535)"). */
const char *flags_parse_duration_ms(const char *s, long long *ms);
const char *flags_parse_bytes(const char *s, unsigned long long *bytes);
const char *flags_parse_bool(const char *s, bool *v);
const char *flags_parse_port(const char *s, uint16_t *port);

/* Free a FLAG_STRINGS array (NULL-tolerant) and clear *v and *n. */
void flags_free_strings(char ***v, size_t *n);

#endif

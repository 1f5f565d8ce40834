/* tools/cli.h — ringlet's command line: parsing (pure, testable) and dispatch.
 *
 *   ringlet tcp server|client [flags]     ringlet server|client [flags] (implied tcp)
 *   ringlet status [flags]                ringlet version       ringlet help [command]
 *
 * Invoked through a link named inlets-pro, the binary behaves identically (only the
 * program name in messages changes). Usage errors exit with status 2, help and version
 * with 0. */
#ifndef RINGLET_TOOLS_CLI_H
#define RINGLET_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "engine/config.h"

enum cli_kind {
	CLI_ERROR = -1, /* usage error: message in err, exit status 2 */
	CLI_HELP = 0,   /* print cli_cmd.topic's help to stdout, exit status 0 */
	CLI_VERSION,
	CLI_SERVER,
	CLI_CLIENT,
	CLI_STATUS,
};

/* The commands a help text exists for. */
enum cli_topic {
	CLI_TOPIC_ROOT,
	CLI_TOPIC_TCP,
	CLI_TOPIC_SERVER,
	CLI_TOPIC_CLIENT,
	CLI_TOPIC_STATUS,
	CLI_TOPIC_VERSION,
	CLI_TOPIC_HELP,
};

struct cli_cmd {
	enum cli_kind kind;
	enum cli_topic topic; /* CLI_HELP: the help to print; CLI_ERROR: the usage hint */
	const char *prog;     /* "ringlet", or "inlets-pro" when invoked by that name */
	/* CLI_SERVER, CLI_CLIENT: the complete engine configuration (token read and trimmed,
	 * URL parsed). CLI_STATUS: url*, token and handshake_ms (the request timeout). */
	struct cfg cfg;
	char *generate; /* --generate: "systemd" or "k8s_yaml"; NULL if absent */
	bool json;      /* status --json */
};

/* Parse argv (argv[0] is the program) into *out, which the caller later frees with
 * cli_cmd_free() whatever the result. Reads the token file or variable the flags name.
 * Returns out->kind: a command, CLI_HELP, or CLI_ERROR with a message in err
 * (e.g. "unknown flag: --nope", "a token is required: ..."). */
enum cli_kind cli_parse(int argc, char **argv, struct cli_cmd *out, char *err, size_t errlen);

/* Free what *cmd owns (NULL-tolerant). */
void cli_cmd_free(struct cli_cmd *cmd);

/* Returns a message explaining why *cmd cannot run for lack of TLS support (only `status`
 * with an https:// or wss:// URL), or NULL when it can. */
const char *cli_check_tls_supported(const struct cli_cmd *cmd);

/* Print the help text of a command (its description, usage, examples and every flag with
 * its default) as prog names it. */
void cli_print_help(FILE *out, const char *prog, enum cli_topic topic);

/* Print "ringlet <version> (<sha>)" and "compatible with: inlets-pro tcp". */
void cli_print_version(FILE *out);

/* Parse, then run: the whole program. Returns the process exit status. */
int cli_main(int argc, char **argv);

/* `ringlet status`: GET /status from the server at c->url_* with the bearer c->token and
 * print the server's info and a table of its clients, or the JSON as received when json
 * is true. Returns the exit status: 0, or 1 when the server cannot be reached or answers
 * with an error. (tools/status.c) */
int ringlet_status_run(const struct cfg *c, bool json);

#endif

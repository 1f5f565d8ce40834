/* tools/systemd.h — `--generate systemd`: print a hardened systemd unit that runs this
 * binary with the same command and flags (minus --generate). */
#ifndef RINGLET_TOOLS_SYSTEMD_H
#define RINGLET_TOOLS_SYSTEMD_H

#include <stdio.h>

#include "tools/cli.h"

/* Write the unit for *cmd (a parsed server or client command) to out. argv is the
 * original command line, from which the flags are copied. Returns 0 or -errno. */
int systemd_unit(FILE *out, const struct cli_cmd *cmd, int argc, char **argv);

#endif

/* tools/k8s.h — `--generate k8s_yaml`: print Kubernetes manifests (a Deployment that runs
 * this command from ringlet's image, the Secret it reads the token from, and Services)
 * shaped as tools/charts renders them. */
#ifndef RINGLET_TOOLS_K8S_H
#define RINGLET_TOOLS_K8S_H

#include <stdio.h>

#include "tools/cli.h"

/* Write the manifests for *cmd (a parsed server or client command) to out. argv is the
 * original command line: its flags become the container's args, except --generate and the
 * token and licence flags, which become Secret mounts (the token never appears in the
 * output). Returns 0 or -errno. */
int k8s_yaml(FILE *out, const struct cli_cmd *cmd, int argc, char **argv);

#endif

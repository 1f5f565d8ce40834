/* tools/version.c — the version strings; the Makefile passes RINGLET_VERSION (from the
 * VERSION file) and RINGLET_SHA (git rev-parse --short=12 HEAD) for this file only. */
#include "engine/ringlet.h"

#ifndef RINGLET_VERSION
#define RINGLET_VERSION "0.0.0-dev"
#endif
#ifndef RINGLET_SHA
#define RINGLET_SHA "unknown"
#endif

const char ringlet_version[] = RINGLET_VERSION;
const char ringlet_sha[] = RINGLET_SHA;

/* ebpf/loader.h — loads ringlet's sockmap steering programs (sockmap.bpf.c) through libbpf
 * and owns everything it creates: the programs, their maps, the cgroup link and the map
 * attachment. Nothing is pinned: every object is held by this process's file descriptors,
 * so the kernel releases them when the process ends, however it ends (docs/DESIGN.md,
 * "Sockmap steering"). */
#ifndef RINGLET_EBPF_LOADER_H
#define RINGLET_EBPF_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "ebpf/sockmap.h"

struct sockmap;

/* Load and attach: the sockops program to the cgroup-v2 directory `cgroup` (NULL or "":
 * the cgroup this process runs in), the sk_msg program to the hop map. Returns 0 and
 * *out, or -errno with a sentence naming the cause in why (no capability, no cgroup v2,
 * a kernel without sockmap support, ...). Thread-safe once open. */
int sockmap_open(const char *cgroup, struct sockmap **out, char *why, size_t whylen);

/* Make ip:port a hop endpoint: connections to or from it are steered when both ends are
 * on this host and in the cgroup. family AF_INET (ip: 4 bytes) or AF_INET6 (16 bytes);
 * ip NULL: every address of that family. Endpoints are this process's network
 * namespace's: sockets of other namespaces never match them. role: SM_EP_LISTEN or SM_EP_DIAL;
 * roles accumulate. Returns 0 or -errno (the map holds SM_MAX_ENDPOINTS). */
int sockmap_add_endpoint(struct sockmap *m, int family, const void *ip, uint16_t port,
                         uint32_t role);

/* Mark fd, a socket of ringlet's about to connect() to a SM_EP_DIAL endpoint, as ringlet's:
 * only marked dialling sockets (and their peers) are steered at such endpoints, never
 * other programs' connections to the same upstream. Returns 0 or -errno. */
int sockmap_mark_own(struct sockmap *m, int fd);

/* Sum the per-CPU counters into out[SM_STAT_MAX]. */
void sockmap_read_stats(struct sockmap *m, uint64_t out[SM_STAT_MAX]);

/* The cgroup directory the sockops program is attached to. */
const char *sockmap_cgroup(const struct sockmap *m);

/* Detach and free (NULL-tolerant). Sockets already steered keep their path until they
 * close; the kernel frees the programs and maps after the last of them. */
void sockmap_close(struct sockmap *m);

#endif

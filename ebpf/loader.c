/* ebpf/loader.c — the user-space half of sockmap steering: find the cgroup, load the
 * skeleton, attach, register hop ports, read counters, detach. */
#include "ebpf/loader.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <unistd.h>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/magic.h>

#include "sockmap.skel.h"

struct sockmap {
	struct sockmap_bpf *skel;
	uint64_t netns; /* this process's network namespace cookie */
	int cgroup_fd;
	int msg_attached; /* the sk_msg program is attached to the hop map */
	pthread_mutex_t mu;
	char cgroup[PATH_MAX];
};

/* libbpf's last message, kept to explain a failed load (libbpf prints nothing else). */
static __thread char last_libbpf[256];

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	char line[sizeof(last_libbpf)];
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n > 0) {
		size_t l = strcspn(line, "\n");
		line[l] = 0;
		if (l)
			memcpy(last_libbpf, line, l + 1);
	}
	return 0;
}

/* Undo mountinfo's octal escapes (\040 for a space, ...) in place. */
static void unescape(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = 0;
}

/* The mount point of the cgroup-v2 hierarchy and the cgroup it shows at that point (its
 * root, "/" unless a subtree is mounted), from /proc/self/mountinfo. */
static int cgroup2_mount(char *out, size_t len, char *root_out, size_t root_len)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return -errno;
	char line[4096];
	int ret = -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		/* id parent major:minor root mountpoint options... - fstype source opts */
		char *sep = strstr(line, " - ");
		if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0)
			continue;
		char root[PATH_MAX], mnt[PATH_MAX];
		if (sscanf(line, "%*s %*s %*s %4095s %4095s", root, mnt) != 2)
			continue;
		unescape(root);
		unescape(mnt);
		if ((size_t)snprintf(out, len, "%s", mnt) < len &&
		    (size_t)snprintf(root_out, root_len, "%s", root) < root_len)
			ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

/* This process's cgroup-v2 directory: the mount point plus the "0::" line's path. */
static int own_cgroup(char *out, size_t len, char *why, size_t whylen)
{
	char mnt[PATH_MAX], root[PATH_MAX];
	if (cgroup2_mount(mnt, sizeof(mnt), root, sizeof(root)) != 0) {
		snprintf(why, whylen, "no cgroup v2 hierarchy is mounted");
		return -ENOENT;
	}
	FILE *f = fopen("/proc/self/cgroup", "r");
	if (!f) {
		snprintf(why, whylen, "cannot read /proc/self/cgroup: %s", strerror(errno));
		return -errno;
	}
	char line[PATH_MAX + 8];
	int ret = -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) != 0)
			continue;
		line[strcspn(line, "\n")] = 0;
		const char *p = line + 3;
		/* The path is from the hierarchy's root; the mount shows it from `root`. */
		size_t rl = strlen(root);
		if (strcmp(root, "/") != 0 && strncmp(p, root, rl) == 0 &&
		    (p[rl] == '/' || p[rl] == 0))
			p += rl;
		if ((size_t)snprintf(out, len, "%s%s", mnt, strcmp(p, "/") ? p : "") < len)
			ret = 0;
		break;
	}
	fclose(f);
	if (ret)
		snprintf(why, whylen, "this process has no cgroup v2 membership");
	return ret;
}

static int fail(struct sockmap *m, int err, char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	if (last_libbpf[0] && n >= 0 && (size_t)n < whylen)
		snprintf(why + n, whylen - (size_t)n, " (libbpf: %s)", last_libbpf);
	sockmap_close(m);
	return err;
}

/* Does the running kernel's sockmap keep msg_tot_len (the flow-control bound reads it)? */
static bool kernel_has_msg_tot_len(void)
{
	struct btf *btf = btf__load_vmlinux_btf();
	if (!btf)
		return false;
	bool found = false;
	__s32 id = btf__find_by_name_kind(btf, "sk_psock", BTF_KIND_STRUCT);
	const struct btf_type *t = id > 0 ? btf__type_by_id(btf, (__u32)id) : NULL;
	const struct btf_member *mb = t ? btf_members(t) : NULL;
	for (int i = 0; t && i < btf_vlen(t); i++)
		if (strcmp(btf__name_by_offset(btf, mb[i].name_off), "msg_tot_len") == 0)
			found = true;
	btf__free(btf);
	return found;
}

int sockmap_open(const char *cgroup, struct sockmap **out, char *why, size_t whylen)
{
	*out = NULL;
	last_libbpf[0] = 0;
	libbpf_set_print(libbpf_quiet);
	struct sockmap *m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	m->cgroup_fd = -1;
	pthread_mutex_init(&m->mu, NULL);

	int err;
	if (cgroup && cgroup[0]) {
		snprintf(m->cgroup, sizeof(m->cgroup), "%s", cgroup);
	} else if ((err = own_cgroup(m->cgroup, sizeof(m->cgroup), why, whylen)) != 0) {
		sockmap_close(m);
		return err;
	}
	m->cgroup_fd = open(m->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (m->cgroup_fd == -1)
		return fail(m, -errno, why, whylen, "cannot open the cgroup %s: %s", m->cgroup,
		            strerror(errno));
	struct statfs sf;
	if (fstatfs(m->cgroup_fd, &sf) == -1 || sf.f_type != CGROUP2_SUPER_MAGIC)
		return fail(m, -ENOTDIR, why, whylen, "%s is not a cgroup v2 directory",
		            m->cgroup);

	/* Tell a kernel without the program or map types apart from one that refuses us. */
	if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SK_MSG, NULL) == 0 ||
	    libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SOCK_OPS, NULL) == 0 ||
	    libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SOCKHASH, NULL) == 0 ||
	    libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SK_STORAGE, NULL) == 0) {
		return fail(m, -EOPNOTSUPP, why, whylen,
		            "this kernel lacks sockmap support (sk_msg, sock_ops, SOCKHASH or "
		            "socket storage)");
	}
	/* Hop endpoints are this network namespace's. */
	int probe = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	socklen_t cl = sizeof(m->netns);
	err = probe == -1 || getsockopt(probe, SOL_SOCKET, SO_NETNS_COOKIE, &m->netns, &cl) ==
	                              -1
	              ? -errno
	              : 0;
	if (probe != -1)
		close(probe);
	if (err)
		return fail(m, -EOPNOTSUPP, why, whylen,
		            "this kernel cannot name network namespaces (SO_NETNS_COOKIE): %s",
		            strerror(-err));
	if (access("/sys/kernel/btf/vmlinux", R_OK) != 0)
		return fail(m, -EOPNOTSUPP, why, whylen,
		            "this kernel publishes no BTF (/sys/kernel/btf/vmlinux), which the "
		            "steering programs need");
	if (!kernel_has_msg_tot_len())
		return fail(m, -EOPNOTSUPP, why, whylen,
		            "this kernel's sockmap does not count a socket's queued bytes "
		            "(sk_psock.msg_tot_len), which bounds what a slow reader may hold");
	m->skel = sockmap_bpf__open_and_load();
	if (!m->skel) {
		err = -errno;
		if (err == -EPERM)
			return fail(m, err, why, whylen,
			            "loading BPF programs is not permitted: needs CAP_BPF, "
			            "CAP_PERFMON "
			            "and CAP_NET_ADMIN (or root)");
		return fail(m, err ? err : -EINVAL, why, whylen,
		            "the kernel refused the steering programs: %s", strerror(-err));
	}
	m->skel->links.ringlet_sockops =
	        bpf_program__attach_cgroup(m->skel->progs.ringlet_sockops, m->cgroup_fd);
	if (!m->skel->links.ringlet_sockops) {
		err = -errno;
		return fail(m, err, why, whylen, "cannot attach to the cgroup %s: %s",
		            m->cgroup, strerror(-err));
	}
	if (bpf_prog_attach(bpf_program__fd(m->skel->progs.ringlet_sk_msg),
	                    bpf_map__fd(m->skel->maps.ringlet_hops), BPF_SK_MSG_VERDICT,
	                    0) != 0) {
		err = -errno;
		return fail(m, err, why, whylen, "cannot attach the sk_msg program: %s",
		            strerror(-err));
	}
	m->msg_attached = 1;
	*out = m;
	return 0;
}

int sockmap_add_endpoint(struct sockmap *m, int family, const void *ip, uint16_t port,
                         uint32_t role)
{
	struct sm_endpoint key = {.netns = m->netns, .family = (__u32)family, .port = port};
	__u32 val = 0;
	if (family != AF_INET && family != AF_INET6)
		return -EAFNOSUPPORT;
	if (ip)
		memcpy(key.ip, ip, family == AF_INET ? 4 : 16);
	int fd = bpf_map__fd(m->skel->maps.ringlet_endpoints);
	/* Roles accumulate: read, or, write, under a lock shared by the shards. */
	pthread_mutex_lock(&m->mu);
	if (bpf_map_lookup_elem(fd, &key, &val) != 0)
		val = 0;
	val |= role;
	int ret = bpf_map_update_elem(fd, &key, &val, BPF_ANY) == 0 ? 0 : -errno;
	pthread_mutex_unlock(&m->mu);
	return ret;
}

int sockmap_mark_own(struct sockmap *m, int fd)
{
	__u32 one = 1;
	return bpf_map_update_elem(bpf_map__fd(m->skel->maps.ringlet_own), &fd, &one,
	                           BPF_ANY) == 0
	               ? 0
	               : -errno;
}

void sockmap_read_stats(struct sockmap *m, uint64_t out[SM_STAT_MAX])
{
	int ncpu = libbpf_num_possible_cpus();
	int fd = bpf_map__fd(m->skel->maps.ringlet_stats);
	__u64 *v = ncpu > 0 ? calloc((size_t)ncpu, sizeof(*v)) : NULL;
	for (__u32 i = 0; i < SM_STAT_MAX; i++) {
		out[i] = 0;
		if (!v || bpf_map_lookup_elem(fd, &i, v) != 0)
			continue;
		for (int c = 0; c < ncpu; c++)
			out[i] += v[c];
	}
	free(v);
}

const char *sockmap_cgroup(const struct sockmap *m)
{
	return m->cgroup;
}

void sockmap_close(struct sockmap *m)
{
	if (!m)
		return;
	if (m->msg_attached)
		bpf_prog_detach2(bpf_program__fd(m->skel->progs.ringlet_sk_msg),
		                 bpf_map__fd(m->skel->maps.ringlet_hops), BPF_SK_MSG_VERDICT);
	sockmap_bpf__destroy(m->skel); /* detaches the cgroup link, closes every fd */
	if (m->cgroup_fd >= 0)
		close(m->cgroup_fd);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

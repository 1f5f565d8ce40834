/* ebpf/sockmap.h — types shared by the sockmap steering programs (sockmap.bpf.c) and their
 * loader (loader.c). Plain fixed-width types only: this header is compiled both by clang
 * for the BPF target and by the host compiler. */
#ifndef RINGLET_EBPF_SOCKMAP_H
#define RINGLET_EBPF_SOCKMAP_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* One end of a TCP connection, as seen from that end: its network namespace (cookie),
 * addresses in network byte order (IPv4 in ip[0], the rest zero), ports in host byte order.
 * A socket is stored under its own key; its peer is found under the key with local and
 * remote swapped. The namespace keeps equal 4-tuples of different namespaces apart. */
struct sm_key {
	__u64 netns;
	__u32 family; /* AF_INET or AF_INET6 */
	__u32 local_ip[4];
	__u32 remote_ip[4];
	__u32 local_port;
	__u32 remote_port;
	__u32 pad;
};

/* A hop endpoint: an address and port that ringlet listens on (the server's data plane,
 * the client's --local listeners) or dials (the client's upstream, the server's --local
 * targets). An all-zero address stands for every address of the host (a listener on
 * 0.0.0.0 or ::). Keys of the endpoints map. */
struct sm_endpoint {
	__u64 netns; /* ringlet's network namespace (cookie) */
	__u32 family;
	__u32 ip[4];
	__u32 port; /* host byte order */
};

/* What ringlet does at an endpoint (values of the endpoints map, a bit mask). A socket
 * whose local end is a SM_EP_LISTEN endpoint is ringlet's (it accepted it), one whose remote
 * end is one is a consumer's. A socket whose remote end is a SM_EP_DIAL endpoint is
 * ringlet's only if ringlet marked it before connecting (ringlet_own); the socket at the
 * other end is the upstream's only if its peer is such a marked socket. Other programs'
 * connections to the same upstream are left alone. */
enum sm_endpoint_role {
	SM_EP_LISTEN = 1, /* ringlet accepts connections here */
	SM_EP_DIAL = 2,   /* ringlet connects to here */
};

/* Counters (index into the per-CPU stats array). "Ringlet's" sockets are the hop ends
 * that ringlet owns, told apart by the port's side. */
enum sm_stat {
	SM_STAT_SOCKETS,        /* sockets inserted into the hop map (both ends) */
	SM_STAT_HOPS_STEERED,   /* ringlet's sockets whose peer was found: steered */
	SM_STAT_PEER_STEERED,   /* the other ends' sockets whose peer was found */
	SM_STAT_MSGS,           /* messages redirected into a peer's receive queue */
	SM_STAT_BYTES,          /* bytes redirected into a peer's receive queue */
	SM_STAT_FB_NOT_LOCAL,   /* a hop connection whose other end is another host */
	SM_STAT_FB_NO_PEER,     /* ringlet's socket, peer not in the map (not in the cgroup) */
	SM_STAT_FB_INSERT,      /* the map refused the socket (full, or another program's) */
	SM_STAT_FB_LATE,        /* a peer that had already sent by TCP when this end came up */
	SM_STAT_FB_SLOW_READER, /* a steered sender moved to TCP: its reader fell behind */
	SM_STAT_MAX,
};

/* Per-socket decision, taken at the socket's first message and kept for its life so that
 * a connection's bytes never take two paths (which could reorder them). */
enum sm_decision {
	SM_UNDECIDED = 0,
	SM_REDIRECT = 1,
	SM_PASS = 2,
};

#define SM_MAX_SOCKETS 65536  /* entries of the hop map: both ends of 32768 hops */
#define SM_MAX_ENDPOINTS 1024 /* hop endpoints one ringlet process may register */
#define SM_MAX_PASSED 8192    /* remembered sockets that took TCP at their first message */
#define SM_MAX_DIALED 16384   /* remembered ringlet-dialled sockets, for their peers */
/* Steered bytes a reader may leave unread before its sender moves to TCP (whose own
 * buffers and window then hold the sender back). The kernel bounds a steered receive
 * queue only by the host-wide TCP memory limit, so this bound is ringlet's. */
#define SM_INFLIGHT_MAX (4u << 20)

#endif

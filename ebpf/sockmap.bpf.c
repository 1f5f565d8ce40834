// SPDX-License-Identifier: MIT OR GPL-2.0
/* ebpf/sockmap.bpf.c — steering of ringlet's local hops through a SOCKHASH.
 *
 * A hop is a TCP connection between ringlet and a program on the same host: the client's
 * connection to its upstream, the server's data-plane connection from a local consumer.
 * `ringlet_sockops` runs for every TCP socket of the cgroup it is attached to; when a
 * connection is established to or from a hop endpoint (the endpoints map, filled by
 * ringlet) and both of its ends are addresses of this host, it puts the socket into the
 * hop map under its own 4-tuple. `ringlet_sk_msg` runs for every send on a socket in that map:
 * it looks up the socket's peer (the same 4-tuple seen from the other end) and, when it is
 * there, moves the message straight into the peer's receive queue, skipping the TCP/IP stack.
 *
 * A socket decides once, at its first message, and keeps to it: redirect if its peer was
 * in the map then, pass through TCP otherwise. Mixing the two on one connection could
 * reorder bytes, since the receiver reads redirected data before what TCP queued. A socket
 * that chose TCP is remembered (ringlet_passed), so that its peer, if it comes up only
 * afterwards, stays out of the map and reads plain TCP.
 *
 * Flow control. The kernel bounds what a sender may redirect into a reader's queue only by
 * the host-wide TCP memory limit, so a reader that stops would let its sender queue
 * gigabytes. After each redirect the program reads how much the reader has left unread
 * (the peer socket's sockmap queue, through BTF); past SM_INFLIGHT_MAX the sender moves to
 * TCP for the rest of the connection. That is safe for order (the reader drains the
 * redirected bytes before TCP's), and TCP's buffers and window then hold the sender back.
 * The move is one way: going back could put redirected bytes ahead of unread TCP ones. */
/* The kernel's types (generated from its BTF by bpftool), then libbpf's helpers. */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "sockmap.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SM_MAX_SOCKETS);
	__type(key, struct sm_key);
	__type(value, __u64);
} ringlet_hops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SM_MAX_ENDPOINTS);
	__type(key, struct sm_endpoint);
	__type(value, __u32); /* enum sm_endpoint_role bits */
} ringlet_endpoints SEC(".maps");

/* Sockets that chose TCP at their first message, by 4-tuple. Least recently used entries
 * go first: a forgotten entry can only let a late peer into the map, and a stale one only
 * keep a new connection on TCP. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SM_MAX_PASSED);
	__type(key, struct sm_key);
	__type(value, __u8);
} ringlet_passed SEC(".maps");

/* ringlet's dialling sockets, marked from user space before connect(). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u32);
} ringlet_own SEC(".maps");

/* The keys of marked sockets put in the hop map, so that the upstream's end of the same
 * connection (established after it) knows its peer is ringlet's. Least recently used go
 * first: a forgotten entry only keeps a late upstream end on TCP. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SM_MAX_DIALED);
	__type(key, struct sm_key);
	__type(value, __u8);
} ringlet_dialed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SM_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ringlet_stats SEC(".maps");

/* The decision of each socket in the hop map; freed with the socket. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u32); /* enum sm_decision, plus SM_OWN when the socket is ringlet's */
} ringlet_state SEC(".maps");

#define SM_OWN 0x100 /* in ringlet_state: this socket is ringlet's end of the hop */

static __always_inline void count(__u32 stat, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&ringlet_stats, &stat);

	if (v)
		*v += n;
}

/* The roles ringlet has at ip:port (exact address first, then every address). */
static __always_inline __u32 endpoint_role(__u64 netns, __u32 family, const __u32 ip[4],
                                           __u32 port)
{
	struct sm_endpoint ep = {.netns = netns, .family = family, .port = port};
	__u32 *role;

	ep.ip[0] = ip[0];
	ep.ip[1] = ip[1];
	ep.ip[2] = ip[2];
	ep.ip[3] = ip[3];
	role = bpf_map_lookup_elem(&ringlet_endpoints, &ep);
	if (role)
		return *role;
	ep.ip[0] = ep.ip[1] = ep.ip[2] = ep.ip[3] = 0;
	role = bpf_map_lookup_elem(&ringlet_endpoints, &ep);
	return role ? *role : 0;
}

/* A socket's own key from a sock_ops or sk_msg context (the same field names in both):
 * ports to host byte order, addresses as they are. The caller normalizes and adds the
 * namespace. */
#define KEY_FROM_CTX(k, ctx)                                                                   \
	do {                                                                                   \
		(k)->family = (ctx)->family;                                                   \
		(k)->local_port = (ctx)->local_port;                                           \
		(k)->remote_port = bpf_ntohl((ctx)->remote_port);                              \
		if ((ctx)->family == AF_INET) {                                                \
			(k)->local_ip[0] = (ctx)->local_ip4;                                   \
			(k)->remote_ip[0] = (ctx)->remote_ip4;                                 \
		} else {                                                                       \
			(k)->local_ip[0] = (ctx)->local_ip6[0];                                \
			(k)->local_ip[1] = (ctx)->local_ip6[1];                                \
			(k)->local_ip[2] = (ctx)->local_ip6[2];                                \
			(k)->local_ip[3] = (ctx)->local_ip6[3];                                \
			(k)->remote_ip[0] = (ctx)->remote_ip6[0];                              \
			(k)->remote_ip[1] = (ctx)->remote_ip6[1];                              \
			(k)->remote_ip[2] = (ctx)->remote_ip6[2];                              \
			(k)->remote_ip[3] = (ctx)->remote_ip6[3];                              \
		}                                                                              \
	} while (0)

/* An IPv6 socket of a dual-stack listener talks to an IPv4 peer through v4-mapped
 * addresses (::ffff:a.b.c.d); key both ends as IPv4 so that each finds the other. */
static __always_inline void normalize_key(struct sm_key *k)
{
	if (k->family != AF_INET6 || k->local_ip[0] || k->local_ip[1] || k->remote_ip[0] ||
	    k->remote_ip[1] || k->local_ip[2] != bpf_htonl(0xffff) ||
	    k->remote_ip[2] != bpf_htonl(0xffff))
		return;
	k->family = AF_INET;
	k->local_ip[0] = k->local_ip[3];
	k->remote_ip[0] = k->remote_ip[3];
	k->local_ip[2] = k->local_ip[3] = 0;
	k->remote_ip[2] = k->remote_ip[3] = 0;
}

static __always_inline void swap_key(struct sm_key *out, const struct sm_key *k)
{
	out->netns = k->netns;
	out->family = k->family;
	out->pad = 0;
	out->local_port = k->remote_port;
	out->remote_port = k->local_port;
	for (int i = 0; i < 4; i++) {
		out->local_ip[i] = k->remote_ip[i];
		out->remote_ip[i] = k->local_ip[i];
	}
}

/* Both ends on this host: a loopback address, or the same address at both ends (a
 * connection to one of the host's own addresses is routed through loopback and takes
 * that address as its source). */
static __always_inline int is_local(const struct sm_key *k)
{
	if (k->family == AF_INET) {
		__u32 r = bpf_ntohl(k->remote_ip[0]);

		return (r >> 24) == 127 || k->remote_ip[0] == k->local_ip[0];
	}
	if (k->remote_ip[0] == 0 && k->remote_ip[1] == 0 && k->remote_ip[2] == 0 &&
	    k->remote_ip[3] == bpf_htonl(1))
		return 1; /* ::1 */
	if (k->remote_ip[0] == 0 && k->remote_ip[1] == 0 &&
	    k->remote_ip[2] == bpf_htonl(0xffff) && (bpf_ntohl(k->remote_ip[3]) >> 24) == 127)
		return 1; /* ::ffff:127.0.0.0/104 */
	return k->remote_ip[0] == k->local_ip[0] && k->remote_ip[1] == k->local_ip[1] &&
	       k->remote_ip[2] == k->local_ip[2] && k->remote_ip[3] == k->local_ip[3];
}

SEC("sockops")
int ringlet_sockops(struct bpf_sock_ops *skops)
{
	struct sm_key key = {}, peer;
	__u32 lrole, rrole, own;
	struct bpf_sock *sk;
	__u32 marked, hop;
	__u32 *state;

	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
	    skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	if (skops->family != AF_INET && skops->family != AF_INET6)
		return 1;
	KEY_FROM_CTX(&key, skops);
	normalize_key(&key);
	key.netns = bpf_get_netns_cookie(skops);
	sk = skops->sk;
	if (!sk)
		return 1;
	lrole = endpoint_role(key.netns, key.family, key.local_ip, key.local_port);
	rrole = endpoint_role(key.netns, key.family, key.remote_ip, key.remote_port);
	if (!lrole && !rrole)
		return 1; /* not a hop: leave it alone */
	swap_key(&peer, &key);
	marked = (rrole & SM_EP_DIAL) && bpf_sk_storage_get(&ringlet_own, sk, 0, 0);
	own = (lrole & SM_EP_LISTEN) || marked;
	/* A consumer of ringlet's listener, or the upstream's end of a connection ringlet
	 * dialled; anything else at a dial endpoint is another program's and left alone. */
	hop = own || (rrole & SM_EP_LISTEN) ||
	      ((lrole & SM_EP_DIAL) && bpf_map_lookup_elem(&ringlet_dialed, &peer));
	if (!hop)
		return 1;
	if (!is_local(&key)) {
		if (own)
			count(SM_STAT_FB_NOT_LOCAL, 1);
		return 1;
	}
	if (bpf_map_lookup_elem(&ringlet_passed, &peer)) {
		/* The peer has already sent by TCP: so must this end, both ways. */
		if (own)
			count(SM_STAT_FB_LATE, 1);
		return 1;
	}
	state = bpf_sk_storage_get(&ringlet_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!state)
		return 1;
	*state = own ? SM_OWN : 0;
	if (bpf_sock_hash_update(skops, &ringlet_hops, &key, BPF_NOEXIST) != 0) {
		count(SM_STAT_FB_INSERT, 1);
		return 1;
	}
	if (marked) {
		__u8 one = 1;

		bpf_map_update_elem(&ringlet_dialed, &key, &one, BPF_ANY);
	}
	count(SM_STAT_SOCKETS, 1);
	return 1;
}

/* Bytes the reader of a just-redirected message has not read yet: the redirect target
 * (the kernel's struct sk_msg behind the context) -> its psock (sk_user_data, whose low
 * bits are flags) -> msg_tot_len. Read through BTF (CO-RE), so kernel layouts may differ;
 * a kernel without msg_tot_len reports "over the limit", and steering stops after the
 * first message of each connection rather than going unbounded. */
static __always_inline __u64 reader_queued(struct sk_msg_md *md)
{
	struct sk_msg *m = (struct sk_msg *)md;
	struct sock *peer = BPF_CORE_READ(m, sk_redir);
	struct sk_psock *psock = 0;
	unsigned long ud;

	if (!bpf_core_field_exists(psock->msg_tot_len) || !peer)
		return ~0ull;
	ud = (unsigned long)BPF_CORE_READ(peer, sk_user_data);
	psock = (struct sk_psock *)(ud & ~7ul); /* SK_USER_DATA_PTRMASK */
	if (!psock)
		return ~0ull;
	return BPF_CORE_READ(psock, msg_tot_len);
}

SEC("sk_msg")
int ringlet_sk_msg(struct sk_msg_md *msg)
{
	struct sm_key self = {}, peer;
	struct bpf_sock *sk = msg->sk;
	__u32 *state, decision;

	if (!sk)
		return SK_PASS;
	state = bpf_sk_storage_get(&ringlet_state, sk, 0, 0);
	if (!state)
		return SK_PASS;
	decision = *state & 0xff;
	if (decision == SM_PASS)
		return SK_PASS;

	/* The peer's key: this socket's own, seen from the other end. */
	KEY_FROM_CTX(&self, msg);
	normalize_key(&self);
	self.netns = bpf_get_netns_cookie(msg);
	swap_key(&peer, &self);
	if (bpf_msg_redirect_hash(msg, &ringlet_hops, &peer, BPF_F_INGRESS) == SK_PASS) {
		if (decision == SM_UNDECIDED) {
			*state = (*state & SM_OWN) | SM_REDIRECT;
			count((*state & SM_OWN) ? SM_STAT_HOPS_STEERED : SM_STAT_PEER_STEERED,
			      1);
		}
		count(SM_STAT_MSGS, 1);
		count(SM_STAT_BYTES, msg->size);
		if (reader_queued(msg) > SM_INFLIGHT_MAX) {
			/* This message still goes; the next ones take TCP. */
			*state = (*state & SM_OWN) | SM_PASS;
			count(SM_STAT_FB_SLOW_READER, 1);
		}
		return SK_PASS;
	}
	if (decision == SM_UNDECIDED) {
		/* No peer at the first message: TCP for the life of this socket. */
		__u8 one = 1;

		bpf_map_update_elem(&ringlet_passed, &self, &one, BPF_ANY);
		*state = (*state & SM_OWN) | SM_PASS;
		if (*state & SM_OWN)
			count(SM_STAT_FB_NO_PEER, 1);
		return SK_PASS;
	}
	/* Decided to redirect, but the peer has left the map: it closed, so TCP answers for
	 * it (a reset), as it would have without steering. */
	return SK_PASS;
}

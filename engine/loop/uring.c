/* engine/loop/uring.c — io_uring feature probing and ring set-up with fallbacks (the
 * provided buffer rings are in bufring.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/loop/shard.h"

struct uring_features uring_feat;

static bool try_flags(unsigned flags)
{
	struct io_uring r;
	struct io_uring_params p = {.flags = flags};
	if (io_uring_queue_init_params(4, &r, &p) != 0)
		return false;
	io_uring_queue_exit(&r);
	return true;
}

/* Send a byte through a socket pair and read it with a multishot recv from buffer group
 * b: true when the CQE has the byte, a buffer and IORING_CQE_F_MORE. (Multishot accept
 * came with provided buffer rings, in 5.19, and needs no separate test.) */
static bool multishot_recv_works(struct io_uring *r, struct bufring *b)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		return false;
	bool ok = false;
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = b->bgid;
	io_uring_sqe_set_data64(sqe, 1);
	if (io_uring_submit(r) == 1 && write(sv[1], "x", 1) == 1) {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec ts = {.tv_sec = 1};
		if (io_uring_wait_cqe_timeout(r, &cqe, &ts) == 0) {
			ok = cqe->res == 1 && (cqe->flags & IORING_CQE_F_BUFFER) &&
			     (cqe->flags & IORING_CQE_F_MORE);
			io_uring_cqe_seen(r, cqe);
		}
	}
	/* Closing both ends finishes the multishot request before the ring goes. */
	close(sv[0]);
	close(sv[1]);
	return ok;
}

/* A multishot recv with a per-completion length of 2 and a total of 3, fed 5 bytes: true
 * when no completion has more than 2 bytes and the recv ends (no IORING_CQE_F_MORE) once
 * it has 3 or more: the total ends it after the read that reaches it, which may go past
 * it by less than one length (Linux 6.18 reads 2 then 2). A kernel that does not know the
 * total either refuses the length or keeps reading. */
static bool multishot_recv_limit_works(void)
{
	struct io_uring r;
	if (io_uring_queue_init(8, &r, 0) != 0)
		return false;
	struct bufring b;
	if (bufring_init(&r, &b, 6, 4, 4096) != 0) {
		io_uring_queue_exit(&r);
		return false;
	}
	int sv[2];
	bool ok = false;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
		io_uring_prep_recv_multishot(sqe, sv[0], NULL, 2, 0);
		sqe->file_index = 3; /* optlen in newer headers: the total */
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = b.bgid;
		io_uring_sqe_set_data64(sqe, 1);
		unsigned got = 0, n = 0;
		bool more = true, sizes_ok = true;
		if (io_uring_submit(&r) == 1 && write(sv[1], "xxxxx", 5) == 5) {
			struct __kernel_timespec ts = {.tv_nsec = 50000000};
			struct io_uring_cqe *cqe;
			while (more && n < 4 && io_uring_wait_cqe_timeout(&r, &cqe, &ts) == 0) {
				sizes_ok = sizes_ok && cqe->res > 0 && cqe->res <= 2;
				if (cqe->res > 0)
					got += (unsigned)cqe->res;
				more = cqe->flags & IORING_CQE_F_MORE;
				n++;
				io_uring_cqe_seen(&r, cqe);
			}
		}
		ok = sizes_ok && !more && got >= 3 && got <= 4;
		close(sv[0]);
		close(sv[1]);
	}
	bufring_free(&r, &b);
	io_uring_queue_exit(&r);
	return ok;
}

int uring_probe(const char **missing)
{
	struct io_uring r;
	int ret = io_uring_queue_init(8, &r, 0);
	if (ret < 0) {
		*missing = "io_uring (io_uring_setup failed; is it disabled by sysctl "
		           "kernel.io_uring_disabled or a seccomp policy?)";
		return ret;
	}
	struct io_uring_probe *p = io_uring_get_probe_ring(&r);
	if (!p) {
		io_uring_queue_exit(&r);
		*missing = "IORING_REGISTER_PROBE (kernel too old)";
		return -ENOSYS;
	}
	static const struct {
		int op;
		const char *name;
	} need[] = {
	        {IORING_OP_ACCEPT, "IORING_OP_ACCEPT"},
	        {IORING_OP_CONNECT, "IORING_OP_CONNECT"},
	        {IORING_OP_RECV, "IORING_OP_RECV"},
	        {IORING_OP_SEND, "IORING_OP_SEND"},
	        {IORING_OP_SENDMSG, "IORING_OP_SENDMSG"},
	        {IORING_OP_ASYNC_CANCEL, "IORING_OP_ASYNC_CANCEL"},
	        {IORING_OP_LINK_TIMEOUT, "IORING_OP_LINK_TIMEOUT"},
	        {IORING_OP_TIMEOUT, "IORING_OP_TIMEOUT"},
	        {IORING_OP_POLL_ADD, "IORING_OP_POLL_ADD"},
	        {IORING_OP_MSG_RING, "IORING_OP_MSG_RING"},
	};
	ret = 0;
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (!io_uring_opcode_supported(p, need[i].op)) {
			*missing = need[i].name;
			ret = -ENOSYS;
			break;
		}
	}
	io_uring_free_probe(p);

	/* Provided buffer rings (5.19) are required: register a tiny one to find out. */
	if (ret == 0) {
		struct bufring b;
		if (bufring_init(&r, &b, 7, 2, 4096) != 0) {
			*missing =
			        "provided buffer rings (IORING_REGISTER_PBUF_RING, Linux 5.19)";
			ret = -ENOSYS;
		} else {
			/* Multishot recv (6.0) has no probe bit: try one on a socket pair. */
			if (!multishot_recv_works(&r, &b)) {
				*missing = "multishot recv with provided buffers (Linux 6.0)";
				ret = -ENOSYS;
			}
			bufring_free(&r, &b);
		}
	}
	io_uring_queue_exit(&r);
	if (ret)
		return ret;

	uring_feat.single_issuer = try_flags(IORING_SETUP_SINGLE_ISSUER);
	uring_feat.defer_taskrun =
	        uring_feat.single_issuer &&
	        try_flags(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
	uring_feat.coop_taskrun = try_flags(IORING_SETUP_COOP_TASKRUN);
	uring_feat.submit_all = try_flags(IORING_SETUP_SUBMIT_ALL);
	uring_feat.recv_mshot_limit = multishot_recv_limit_works();
	return 0;
}

int uring_ring_init(struct io_uring *ring, unsigned entries)
{
	struct io_uring_params p;
	unsigned flags = IORING_SETUP_CQSIZE;
	if (uring_feat.submit_all)
		flags |= IORING_SETUP_SUBMIT_ALL;
	if (uring_feat.single_issuer)
		flags |= IORING_SETUP_SINGLE_ISSUER;
	if (uring_feat.defer_taskrun)
		flags |= IORING_SETUP_DEFER_TASKRUN;
	else if (uring_feat.coop_taskrun)
		flags |= IORING_SETUP_COOP_TASKRUN;
	memset(&p, 0, sizeof(p));
	p.flags = flags;
	p.cq_entries = entries * 4;
	int ret = io_uring_queue_init_params(entries, ring, &p);
	if (ret == -EINVAL) {
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = entries * 4;
		ret = io_uring_queue_init_params(entries, ring, &p);
	}
	return ret;
}

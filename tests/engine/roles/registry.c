/* tests/engine/roles/registry.c — the server's registry (engine/roles/registry.c): which
 * client and which of its lanes a new data-plane connection goes to, and what a leaving
 * lane takes with it. Sessions are filled in by hand under the lock, as
 * engine/roles/server.c's on_session and lane_register do. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "engine/roles/registry.h"

static struct registry *r;

static void setup(void)
{
	r = calloc(1, sizeof(*r));
	cr_assert_not_null(r);
	registry_init(r);
}

static void teardown(void)
{
	registry_destroy(r);
	free(r);
	r = NULL;
}

TestSuite(registry, .init = setup, .fini = teardown);

/* A lane's connection slot and generation, made up so that a pick names its session and
 * lane: idx = slot * 100 + lane. */
static uint32_t lane_idx(int slot, uint16_t lane)
{
	return (uint32_t)slot * 100 + lane;
}

#define GEN 7

/* The data-plane port's entry, as port_open makes it (listeners aside). */
static int open_port(uint16_t port)
{
	pthread_mutex_lock(&r->mu);
	struct reg_port *rp = registry_port_find(r, port);
	if (!rp)
		rp = registry_port_add(r, port);
	cr_assert_not_null(rp);
	int slot = (int)(rp - r->ports);
	pthread_mutex_unlock(&r->mu);
	return slot;
}

/* Lane `lane` of the session in `slot` is served by `shard` (lane_register). */
static void add_lane(int slot, uint16_t lane, int shard, uint16_t gen)
{
	pthread_mutex_lock(&r->mu);
	struct reg_lane *l = &r->sess[slot].lanes[lane];
	l->used = true;
	l->shard = shard;
	l->idx = lane_idx(slot, lane);
	l->gen = gen;
	pthread_mutex_unlock(&r->mu);
}

/* A new client offering ports, its lane 0 on `shard` (on_session). Returns its slot. */
static int add_session(uint64_t id, const uint16_t *ports, uint16_t nports, int shard)
{
	pthread_mutex_lock(&r->mu);
	int slot = registry_session_slot(r);
	cr_assert_geq(slot, 0);
	struct reg_session *rs = &r->sess[slot];
	memset(rs, 0, sizeof(*rs));
	for (uint16_t i = 0; i < nports; i++)
		rs->ports[rs->nports++] = ports[i];
	rs->id = id;
	rs->used = true;
	r->nclients++;
	pthread_mutex_unlock(&r->mu);
	add_lane(slot, 0, shard, GEN);
	return slot;
}

static const uint16_t P8080[] = {8080};
static const uint16_t P9090[] = {9090};
static const uint16_t PBOTH[] = {9090, 8080};

/* The session slot a pick went to (-1 when refused); its lane in *lane. */
static int pick_slot(uint16_t port, int here, uint16_t *lane)
{
	struct pick p;
	if (!registry_pick(r, port, here, &p))
		return -1;
	int slot = (int)(p.idx / 100);
	uint16_t ln = (uint16_t)(p.idx % 100);
	cr_assert_lt(slot, REG_MAX_SESSIONS);
	cr_assert_lt(ln, REG_MAX_LANES);
	const struct reg_lane *l = &r->sess[slot].lanes[ln];
	cr_assert(r->sess[slot].used, "picked session slot %d, which is not in use", slot);
	cr_assert(l->used, "picked lane %u of slot %d, which is gone", ln, slot);
	cr_assert_eq(p.shard, l->shard, "the pick names the lane's shard");
	cr_assert_eq(p.gen, l->gen, "the pick names the lane's generation");
	if (lane)
		*lane = ln;
	return slot;
}

/* ---- refusal ---------------------------------------------------------------------- */

Test(registry, refused_when_empty)
{
	struct pick p;
	cr_assert_not(registry_pick(r, 8080, 0, &p));
	cr_assert_eq(r->nclients, 0);
}

/* A client offers the port but no data-plane listener was opened for it: no entry, no
 * pick (the connection cannot have come in on that port). */
Test(registry, refused_without_a_port_entry)
{
	add_session(1, P8080, 1, 0);
	open_port(9090);
	struct pick p;
	cr_assert_not(registry_pick(r, 8080, 0, &p));
}

/* The port is open but no connected client offers it (they left, or offer others). */
Test(registry, refused_when_no_session_offers_the_port)
{
	open_port(8080);
	open_port(9090);
	add_session(1, P9090, 1, 0);
	add_session(2, P9090, 1, 1);
	struct pick p;
	cr_assert_not(registry_pick(r, 8080, 0, &p));
	cr_assert(registry_pick(r, 9090, 0, &p), "the other port is served");
}

/* ---- round-robin over the clients ------------------------------------------------- */

/* Three clients on one port: every three connections, each gets one, in a stable order. */
Test(registry, round_robin_over_sessions)
{
	open_port(8080);
	int s[3];
	for (int i = 0; i < 3; i++)
		s[i] = add_session(100 + (uint64_t)i, P8080, 1, i);
	int got[30];
	for (int i = 0; i < 30; i++) {
		got[i] = pick_slot(8080, 9, NULL);
		cr_assert_geq(got[i], 0, "pick %d refused", i);
	}
	for (int i = 0; i < 30; i += 3) {
		int seen[3] = {0};
		for (int j = 0; j < 3; j++)
			for (int k = 0; k < 3; k++)
				seen[k] += got[i + j] == s[k];
		for (int k = 0; k < 3; k++)
			cr_assert_eq(seen[k], 1, "picks %d..%d: session %d picked %d times", i,
			             i + 2, k, seen[k]);
	}
	for (int i = 3; i < 30; i++)
		cr_assert_eq(got[i], got[i - 3], "the order changed at pick %d", i);
}

/* A client that does not offer the port never gets its connections; those that do share
 * them evenly, each port with its own turn. */
Test(registry, session_not_offering_the_port_never_picked)
{
	open_port(8080);
	open_port(9090);
	int a = add_session(1, P8080, 1, 0);
	int b = add_session(2, P9090, 1, 0);
	int c = add_session(3, PBOTH, 2, 0);
	int na = 0, nb = 0, nc = 0;
	for (int i = 0; i < 20; i++) {
		int s = pick_slot(8080, 0, NULL);
		cr_assert_neq(s, b, "pick %d went to a client that does not offer 8080", i);
		na += s == a;
		nc += s == c;
	}
	cr_assert_eq(na, 10);
	cr_assert_eq(nc, 10);
	na = nb = nc = 0;
	for (int i = 0; i < 20; i++) {
		int s = pick_slot(9090, 0, NULL);
		cr_assert_neq(s, a, "pick %d went to a client that does not offer 9090", i);
		nb += s == b;
		nc += s == c;
	}
	cr_assert_eq(nb, 10);
	cr_assert_eq(nc, 10);
}

/* The pick's port_slot is the port's entry (its counters slot). */
Test(registry, port_slot_is_the_port_entry)
{
	int s7070 = open_port(7070);
	int s8080 = open_port(8080);
	int s9090 = open_port(9090);
	cr_assert(s7070 != s8080 && s8080 != s9090 && s7070 != s9090);
	static const uint16_t ports[] = {7070, 8080, 9090};
	add_session(1, ports, 3, 0);
	struct pick p;
	cr_assert(registry_pick(r, 9090, 0, &p));
	cr_assert_eq(p.port_slot, s9090);
	cr_assert_eq(registry_port_slot(r, 9090), s9090);
	cr_assert(registry_pick(r, 7070, 0, &p));
	cr_assert_eq(p.port_slot, s7070);
	cr_assert_eq(registry_port_slot(r, 7070), s7070);
	cr_assert_eq(registry_port_slot(r, 8080), s8080);
	cr_assert_eq(&r->ports[s8080], registry_port_find(r, 8080));
}

/* ---- the lane ---------------------------------------------------------------------- */

/* A client with a lane on the accepting shard gets the connection on that lane: the
 * stream stays on the shard that accepted it. */
Test(registry, lane_on_the_accepting_shard_preferred)
{
	open_port(8080);
	int s = add_session(1, P8080, 1, 0);
	for (uint16_t k = 1; k < 4; k++)
		add_lane(s, k, k, GEN);
	for (int round = 0; round < 20; round++)
		for (int here = 0; here < 4; here++) {
			uint16_t lane;
			cr_assert_eq(pick_slot(8080, here, &lane), s);
			cr_assert_eq(lane, here, "accepted on shard %d, carried by lane %u",
			             here, lane);
		}
}

/* The shard preference holds per client: with two clients, each pick still lands on the
 * picked client's lane on that shard. */
Test(registry, preferred_lane_per_client)
{
	open_port(8080);
	int a = add_session(1, P8080, 1, 0);
	int b = add_session(2, P8080, 1, 1);
	add_lane(a, 1, 1, GEN);
	add_lane(b, 1, 0, GEN);
	for (int i = 0; i < 8; i++) {
		uint16_t lane;
		int s = pick_slot(8080, 1, &lane);
		cr_assert_eq(lane, s == a ? 1 : 0,
		             "client in slot %d: lane %u is not on shard 1", s, lane);
	}
}

/* No lane on the accepting shard: the client's lanes take the connections in turn (every
 * lane gets some; none is picked twice before the others had one). */
Test(registry, lanes_in_turn_without_one_here)
{
	open_port(8080);
	int s = add_session(1, P8080, 1, 0);
	for (uint16_t k = 1; k < REG_MAX_LANES; k++)
		add_lane(s, k, k, GEN);
	int count[REG_MAX_LANES] = {0};
	for (int i = 0; i < 3 * REG_MAX_LANES; i++) {
		uint16_t lane;
		cr_assert_eq(pick_slot(8080, 99, &lane), s);
		count[lane]++;
		if (i % REG_MAX_LANES == REG_MAX_LANES - 1)
			for (int k = 0; k < REG_MAX_LANES; k++)
				cr_assert_eq(count[k], i / REG_MAX_LANES + 1,
				             "after %d picks lane %d had %d", i + 1, k,
				             count[k]);
	}
}

/* With no lane on the accepting shard, a client with fewer lanes than REG_MAX_LANES gets
 * its connections spread over its lanes in turn (a 4-shard server, a 2-shard client:
 * half the accepts take this path). It once gave lane 0 15 of every 16. */
Test(registry, lanes_in_turn_with_fewer_lanes_than_REG_MAX_LANES)
{
	open_port(8080);
	int s = add_session(1, P8080, 1, 0);
	add_lane(s, 1, 1, GEN);
	int count[2] = {0};
	for (int i = 0; i < 2 * REG_MAX_LANES; i++) {
		uint16_t lane;
		cr_assert_eq(pick_slot(8080, 3, &lane), s);
		cr_assert_lt(lane, 2);
		count[lane]++;
	}
	cr_assert_eq(count[0], REG_MAX_LANES, "lane 0 got %d of %d connections, lane 1 %d",
	             count[0], 2 * REG_MAX_LANES, count[1]);
	cr_assert_eq(count[1], REG_MAX_LANES);
}

/* A lane that left is never handed a connection, whether or not it was on the accepting
 * shard. */
Test(registry, removed_lane_never_picked)
{
	open_port(8080);
	int s = add_session(1, P8080, 1, 0);
	for (uint16_t k = 1; k < 4; k++)
		add_lane(s, k, k, GEN);
	registry_remove(r, s, 1, 2, lane_idx(s, 2), GEN);
	for (int i = 0; i < 3 * REG_MAX_LANES; i++) {
		uint16_t lane;
		cr_assert_eq(pick_slot(8080, 2, &lane), s, "the client still has lanes");
		cr_assert_neq(lane, 2, "pick %d (accepted on its shard) went to lane 2", i);
		cr_assert_eq(pick_slot(8080, 99, &lane), s);
		cr_assert_neq(lane, 2, "pick %d went to lane 2", i);
	}
}

/* ---- a lane leaving ---------------------------------------------------------------- */

/* Lane 0 leaving ends the session: one client fewer, no more connections for it. */
Test(registry, remove_lane0_removes_the_session)
{
	open_port(8080);
	int a = add_session(11, P8080, 1, 0);
	int b = add_session(22, P8080, 1, 3);
	add_lane(a, 1, 1, GEN);
	cr_assert_eq(r->nclients, 2);
	cr_assert_eq(registry_lane0_shard(r, 11), 0);

	registry_remove(r, a, 11, 0, lane_idx(a, 0), GEN);
	cr_assert_eq(r->nclients, 1);
	cr_assert_not(r->sess[a].used);
	cr_assert_eq(registry_lane0_shard(r, 11), -1);
	pthread_mutex_lock(&r->mu);
	cr_assert_null(registry_session_find(r, 11));
	pthread_mutex_unlock(&r->mu);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(pick_slot(8080, 1, NULL), b,
		             "pick %d went to the client that left", i);

	/* Its other lanes going later change nothing, nor does lane 0 going twice. */
	registry_remove(r, a, 11, 1, lane_idx(a, 1), GEN);
	registry_remove(r, a, 11, 0, lane_idx(a, 0), GEN);
	cr_assert_eq(r->nclients, 1, "a client counted out twice");

	registry_remove(r, b, 22, 0, lane_idx(b, 0), GEN);
	cr_assert_eq(r->nclients, 0);
	struct pick p;
	cr_assert_not(registry_pick(r, 8080, 3, &p), "no client left");
}

/* Another lane leaving takes only itself, and only when the registry still knows it as
 * that connection (idx, gen): a lane that re-joined on a new connection is kept. */
Test(registry, remove_other_lane_only_if_idx_and_gen_match)
{
	open_port(8080);
	int s = add_session(1, P8080, 1, 0);
	add_lane(s, 1, 1, GEN);
	add_lane(s, 2, 2, GEN);

	registry_remove(r, s, 1, 1, lane_idx(s, 1), GEN + 1);
	cr_assert(r->sess[s].lanes[1].used, "a stale generation removed the lane");
	registry_remove(r, s, 1, 1, lane_idx(s, 1) + 1, GEN);
	cr_assert(r->sess[s].lanes[1].used, "another connection's idx removed the lane");
	uint16_t lane;
	cr_assert_eq(pick_slot(8080, 1, &lane), s);
	cr_assert_eq(lane, 1, "the kept lane is still picked");

	registry_remove(r, s, 1, 1, lane_idx(s, 1), GEN);
	cr_assert_not(r->sess[s].lanes[1].used);
	cr_assert(r->sess[s].used, "lane 1 leaving ended the session");
	cr_assert(r->sess[s].lanes[0].used && r->sess[s].lanes[2].used, "other lanes went");
	cr_assert_eq(r->nclients, 1);
	cr_assert_eq(registry_lane0_shard(r, 1), 0);
	for (int i = 0; i < 10; i++) {
		cr_assert_eq(pick_slot(8080, 1, &lane), s);
		cr_assert_neq(lane, 1);
	}
}

/* A remove for a session that ended after its slot went to a new client touches nothing
 * of the new client's. */
Test(registry, remove_for_a_session_that_lost_its_slot_does_nothing)
{
	open_port(8080);
	int s = add_session(1, P8080, 1, 0);
	add_lane(s, 1, 1, GEN);
	registry_remove(r, s, 1, 0, lane_idx(s, 0), GEN);
	cr_assert_eq(r->nclients, 0);

	/* The slot goes to client 2 (on_session clears it and fills it in). */
	pthread_mutex_lock(&r->mu);
	struct reg_session *rs = &r->sess[s];
	memset(rs, 0, sizeof(*rs));
	rs->ports[rs->nports++] = 8080;
	rs->id = 2;
	rs->used = true;
	r->nclients++;
	pthread_mutex_unlock(&r->mu);
	add_lane(s, 0, 0, GEN);
	add_lane(s, 1, 1, GEN);

	/* Client 1's lanes report late, with the same slot, idx and gen. */
	registry_remove(r, s, 1, 1, lane_idx(s, 1), GEN);
	registry_remove(r, s, 1, 0, lane_idx(s, 0), GEN);
	cr_assert(rs->used, "the new client was removed");
	cr_assert_eq(rs->id, 2);
	cr_assert(rs->lanes[0].used && rs->lanes[1].used, "the new client lost a lane");
	cr_assert_eq(r->nclients, 1);
	cr_assert_eq(pick_slot(8080, 1, NULL), s);
}

/* Out-of-range slots and lanes are ignored (they come from a lane's own record). */
Test(registry, remove_out_of_range_ignored)
{
	int s = add_session(1, P8080, 1, 0);
	registry_remove(r, -1, 1, 0, lane_idx(s, 0), GEN);
	registry_remove(r, REG_MAX_SESSIONS, 1, 0, lane_idx(s, 0), GEN);
	registry_remove(r, s, 1, REG_MAX_LANES, lane_idx(s, 0), GEN);
	cr_assert(r->sess[s].used);
	cr_assert_eq(r->nclients, 1);
}

/* ---- slots and look-ups ------------------------------------------------------------ */

/* Session slots are handed out in turn, not first-free: a slot just freed is not reused at
 * once (its old lanes may still count bytes into it for a moment). */
Test(registry, session_slots_in_turn)
{
	pthread_mutex_lock(&r->mu);
	int a = registry_session_slot(r);
	r->sess[a].used = true;
	int b = registry_session_slot(r);
	r->sess[b].used = true;
	cr_assert_neq(a, b);
	r->sess[a].used = false;
	int c = registry_session_slot(r);
	cr_assert_neq(c, a, "the slot just freed was handed out again");
	cr_assert_neq(c, b);
	cr_assert_eq(b, (a + 1) % REG_MAX_SESSIONS);
	cr_assert_eq(c, (b + 1) % REG_MAX_SESSIONS);
	pthread_mutex_unlock(&r->mu);
}

/* Every slot taken: -1 (the client is refused); one freed: that one, after the turn comes
 * round. */
Test(registry, session_slots_run_out)
{
	pthread_mutex_lock(&r->mu);
	for (int i = 0; i < REG_MAX_SESSIONS; i++) {
		int s = registry_session_slot(r);
		cr_assert_geq(s, 0, "slot %d of %d", i, REG_MAX_SESSIONS);
		cr_assert_not(r->sess[s].used, "slot %d handed out twice", s);
		r->sess[s].used = true;
	}
	cr_assert_eq(registry_session_slot(r), -1);
	cr_assert_eq(registry_session_slot(r), -1, "still full");
	r->sess[500].used = false;
	cr_assert_eq(registry_session_slot(r), 500);
	r->sess[500].used = true;
	cr_assert_eq(registry_session_slot(r), -1);
	r->sess[3].used = false;
	r->sess[700].used = false;
	cr_assert_eq(registry_session_slot(r), 700, "the turn goes on from 501");
	r->sess[700].used = true;
	cr_assert_eq(registry_session_slot(r), 3, "wraps round");
	pthread_mutex_unlock(&r->mu);
}

Test(registry, lookups_of_unknown_return_minus_one)
{
	cr_assert_eq(registry_port_slot(r, 8080), -1);
	cr_assert_eq(registry_lane0_shard(r, 42), -1);
	int ps = open_port(8080);
	add_session(42, P8080, 1, 5);
	cr_assert_eq(registry_port_slot(r, 8080), ps);
	cr_assert_eq(registry_port_slot(r, 8081), -1);
	cr_assert_eq(registry_lane0_shard(r, 42), 5);
	cr_assert_eq(registry_lane0_shard(r, 43), -1);
	cr_assert_eq(registry_lane0_shard(r, 0), -1, "id 0 is no session's");
}

/* Port entries run out at REG_MAX_PORTS: no entry, and the port is refused. */
Test(registry, port_entries_run_out)
{
	pthread_mutex_lock(&r->mu);
	for (int i = 0; i < REG_MAX_PORTS; i++)
		cr_assert_not_null(registry_port_add(r, (uint16_t)(1000 + i)), "port %d", i);
	cr_assert_null(registry_port_add(r, 9999));
	cr_assert_null(registry_port_find(r, 9999));
	pthread_mutex_unlock(&r->mu);
	cr_assert_eq(registry_port_slot(r, 9999), -1);
	cr_assert_eq(registry_port_slot(r, 1000 + REG_MAX_PORTS - 1), REG_MAX_PORTS - 1);
}

/* Security-group verdicts: identity of the peer, then at most two trie lookups per direction
 * slot (the peer's identity, then any peer). Verdicts in the tries are final: userspace has
 * already merged priorities, drop-wins-ties and defaults (node-agent/src/policy/compile.rs). */
#ifndef TANDEM_POLICY_H
#define TANDEM_POLICY_H

#include "maps.h"

struct verdict {
	__u32 rule_id;
	__u8 allow;
	__u8 reason; /* TANDEM_STAT_DROP_* when !allow */
};

static __always_inline struct policy_value *lookup_slot(void *trie, __u8 dir, __u32 remote,
							__u8 proto, __u16 port)
{
	struct policy_key k = {
		.prefixlen = 56,
		.dir_remote = bpf_htonl((__u32)dir << 24 | remote),
		.proto = proto,
		.port_hi = port >> 8,
		.port_lo = port & 0xff,
	};
	return bpf_map_lookup_elem(trie, &k);
}

static __always_inline struct policy_value *lookup_dir(void *trie, __u8 dir, __u32 remote,
						       __u8 proto, __u16 port)
{
	struct policy_value *v = 0;
	if (remote)
		v = lookup_slot(trie, dir, remote, proto, port);
	if (!v)
		v = lookup_slot(trie, dir, 0, proto, port);
	return v;
}

/* The verdict for a new flow opened in direction dir (INGRESS or EGRESS) with a peer. */
static __always_inline struct verdict evaluate(const struct endpoint_config *ep,
					       const struct dp_config *cfg, __u8 dir,
					       __u32 remote_ip, __u8 proto, __u16 port)
{
	struct verdict out = { .rule_id = 0, .allow = 0, .reason = TANDEM_STAT_DROP_NO_POLICY };
	__u32 epoch = cfg->generation & 1;
	struct policy_outer_key ok = { .policy_id = ep->policy_id, .epoch = epoch };
	void *trie = bpf_map_lookup_elem(&policies, &ok);
	if (!trie)
		return out;
	__u32 remote = 0;
	void *ids = bpf_map_lookup_elem(&identities, &epoch);
	if (ids) {
		struct lpm_v4_key ik = { .prefixlen = 32, .addr = remote_ip };
		__u32 *id = bpf_map_lookup_elem(ids, &ik);
		if (id)
			remote = *id;
	}
	proto = policy_proto(proto);
	if (proto == TANDEM_PROTO_OTHER)
		port = 0;
	out.reason = TANDEM_STAT_DROP_POLICY;
	struct policy_value *v = lookup_dir(trie, dir, remote, proto, port);
	if (!v || v->action != TANDEM_VERDICT_ACCEPT) {
		out.rule_id = v ? v->rule_id : 0;
		return out;
	}
	out.rule_id = v->rule_id;
	if (dir == TANDEM_DIR_EGRESS) {
		struct policy_value *e = lookup_dir(trie, TANDEM_DIR_ENV, remote, proto, port);
		if (!e || e->action != TANDEM_VERDICT_ACCEPT) {
			out.rule_id = e ? e->rule_id : 0;
			out.reason = TANDEM_STAT_DROP_ENV;
			return out;
		}
	}
	out.allow = 1;
	return out;
}

/* Control interfaces admit only platform peers; pods on the control network never reach each
 * other. The longest matching prefix decides, no match denies. */
static __always_inline int control_allows(__u32 remote_ip)
{
	struct lpm_v4_key k = { .prefixlen = 32, .addr = remote_ip };
	__u32 *class = bpf_map_lookup_elem(&control_peers, &k);
	return class && *class == TANDEM_CONTROL_PLATFORM;
}

#endif

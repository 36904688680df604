/* Every pod interface, attached with TCX where the pod's packets pass:
 *   host veth (node netns):     tcx ingress -> from_pod, tcx egress -> to_pod
 *   exclusive ENI (pod netns):  tcx egress  -> from_pod, tcx ingress -> to_pod
 * Order: endpoint entry (strict start) -> anti-spoofing -> control or tenant policy. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "lib/abi.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/events.h"
#include "lib/policy.h"
#include "lib/conntrack.h"

char LICENSE[] SEC("license") = "GPL";

static __always_inline int pass(void)
{
	stat_inc(TANDEM_STAT_PASS);
	return TC_ACT_OK;
}

static __always_inline int drop(const struct event_ctx *ec, const struct pkt *p, __u8 reason,
				__u32 rule_id)
{
	stat_inc(reason);
	if (ec)
		emit_event(ec, p, TANDEM_EVENT_DROP, reason, rule_id);
	return TC_ACT_SHOT;
}

/* A policy drop, or in audit mode a logged pass. */
static __always_inline int deny(const struct endpoint_config *ep, const struct event_ctx *ec,
				const struct pkt *p, __u8 reason, __u32 rule_id)
{
	if (ep->flags & TANDEM_EP_AUDIT) {
		stat_inc(TANDEM_STAT_AUDIT);
		emit_event(ec, p, TANDEM_EVENT_AUDIT, reason, rule_id);
		return pass();
	}
	return drop(ec, p, reason, rule_id);
}

static __always_inline int tenant(const struct endpoint_config *ep, const struct event_ctx *ec,
				  const struct pkt *p, __u8 from_pod)
{
	const struct dp_config *cfg = ec->cfg;
	__u8 dir = from_pod ? TANDEM_DIR_EGRESS : TANDEM_DIR_INGRESS;
	__u32 remote_ip = from_pod ? p->daddr : p->saddr;
	struct ct_key key = {};
	struct ct_entry *e = 0;
	int tracked = ct_tracked(p);

	if (tracked) {
		ct_key_of(&key, ep->endpoint_id, p, from_pod);
		e = bpf_map_lookup_elem(&conntrack, &key);
		if (e && ct_usable(e, cfg, p, ec->now)) {
			if ((ep->flags & TANDEM_EP_RECHECK) && e->generation != cfg->generation) {
				__u8 odir = e->origin == TANDEM_ORIGIN_POD ? TANDEM_DIR_EGRESS
									   : TANDEM_DIR_INGRESS;
				struct verdict v = evaluate(ep, cfg, odir, remote_ip, p->proto,
							    e->policy_port);
				if (!v.allow) {
					if (!(ep->flags & TANDEM_EP_AUDIT))
						bpf_map_delete_elem(&conntrack, &key);
					return deny(ep, ec, p, v.reason, v.rule_id);
				}
				e->generation = cfg->generation;
				e->rule_id = v.rule_id;
			}
			ct_advance(e, p, from_pod, ec->now);
			rule_count(e->rule_id, p->len);
			return pass();
		}
	}

	__u16 port = policy_port(p);
	struct verdict v = evaluate(ep, cfg, dir, remote_ip, p->proto, port);
	if (!v.allow)
		return deny(ep, ec, p, v.reason, v.rule_id);
	rule_count(v.rule_id, p->len);
	stat_inc(TANDEM_STAT_NEW_FLOW);
	emit_event(ec, p, TANDEM_EVENT_NEW_FLOW, 0, v.rule_id);
	if (tracked) {
		struct ct_entry n = {
			.last_seen_ns = ec->now,
			.generation = cfg->generation,
			.rule_id = v.rule_id,
			.policy_port = port,
			.state = ct_initial_state(p),
			.origin = from_pod ? TANDEM_ORIGIN_POD : TANDEM_ORIGIN_REMOTE,
		};
		/* A stale entry of the same flow (expired, or closed and reopened by a SYN, as
		 * when a client reuses its port) is reopened in place: no LRU free and pop, no
		 * second hash walk. */
		if (e)
			*e = n;
		else
			bpf_map_update_elem(&conntrack, &key, &n, BPF_ANY);
	}
	return pass();
}

static __always_inline int handle(struct __sk_buff *skb, __u8 from_pod)
{
	__u32 ifindex = skb->ifindex;
	__u32 zero = 0;
	struct pkt p = {};

	const struct endpoint_config *ep = bpf_map_lookup_elem(&endpoints, &ifindex);
	if (!ep)
		return drop(0, &p, TANDEM_STAT_DROP_NO_ENDPOINT, 0);
	const struct dp_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return drop(0, &p, TANDEM_STAT_DROP_NO_POLICY, 0);
	struct event_ctx ec = {
		.cfg = cfg,
		.endpoint_id = ep->endpoint_id,
		.ifindex = ifindex,
		.from_pod = from_pod,
		/* Timeouts are in seconds and the event budget in events per second: the
		 * jiffy clock is precise enough and cheaper to read. */
		.now = bpf_ktime_get_coarse_ns(),
	};

	int r = parse_packet(skb, &p);
	if (from_pod && r != PARSE_MALFORMED &&
	    __builtin_memcmp(p.src_mac, ep->mac, 6) != 0)
		return drop(&ec, &p, TANDEM_STAT_DROP_SPOOF_MAC, 0);
	switch (r) {
	case PARSE_ARP:
		/* The pod answers ARP for its own address only. */
		if (from_pod && p.saddr != ep->ip)
			return drop(&ec, &p, TANDEM_STAT_DROP_SPOOF_IP, 0);
		return pass();
	case PARSE_UNSUPPORTED:
		return drop(&ec, &p, TANDEM_STAT_DROP_UNSUPPORTED, 0);
	case PARSE_MALFORMED:
		return drop(&ec, &p, TANDEM_STAT_DROP_MALFORMED, 0);
	default:
		break;
	}
	if (from_pod && p.saddr != ep->ip)
		return drop(&ec, &p, TANDEM_STAT_DROP_SPOOF_IP, 0);
	if (r == PARSE_FRAGMENT)
		return drop(&ec, &p, TANDEM_STAT_DROP_FRAGMENT, 0);

	if (ep->role == TANDEM_ROLE_CONTROL) {
		if (control_allows(from_pod ? p.daddr : p.saddr))
			return pass();
		return deny(ep, &ec, &p, TANDEM_STAT_DROP_CONTROL, 0);
	}
	if (ep->role == TANDEM_ROLE_TENANT)
		return tenant(ep, &ec, &p, from_pod);
	return drop(&ec, &p, TANDEM_STAT_DROP_NO_POLICY, 0);
}

SEC("classifier")
int from_pod(struct __sk_buff *skb)
{
	return handle(skb, 1);
}

SEC("classifier")
int to_pod(struct __sk_buff *skb)
{
	return handle(skb, 0);
}

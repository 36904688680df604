/* Connection tracking: replies of allowed flows pass regardless of rules. Entries are keyed
 * from the pod's point of view and scoped by endpoint. TCP state only picks the timeout; a
 * SYN on a closing/closed entry opens a new flow (re-evaluated). */
#ifndef TANDEM_CONNTRACK_H
#define TANDEM_CONNTRACK_H

#include "maps.h"
#include "parse.h"

/* ICMP other than echo is not tracked: it is evaluated by type/code on every packet. */
static __always_inline int ct_tracked(const struct pkt *p)
{
	if (p->proto != TANDEM_PROTO_ICMP)
		return 1;
	return p->icmp_type == ICMP_ECHO_ || p->icmp_type == ICMP_ECHOREPLY_;
}

static __always_inline void ct_key_of(struct ct_key *k, __u32 endpoint_id, const struct pkt *p,
				      int from_pod)
{
	k->endpoint_id = endpoint_id;
	k->proto = p->proto;
	k->_pad[0] = k->_pad[1] = k->_pad[2] = 0;
	int ports = p->proto == TANDEM_PROTO_TCP || p->proto == TANDEM_PROTO_UDP ||
		    p->proto == TANDEM_PROTO_ICMP;
	if (from_pod) {
		k->local_ip = p->saddr;
		k->remote_ip = p->daddr;
		k->local_port = ports ? p->sport : 0;
		k->remote_port = ports ? p->dport : 0;
	} else {
		k->local_ip = p->daddr;
		k->remote_ip = p->saddr;
		k->local_port = ports ? p->dport : 0;
		k->remote_port = ports ? p->sport : 0;
	}
}

static __always_inline __u64 ct_timeout_ns(const struct dp_config *cfg, __u8 proto, __u8 state)
{
	__u32 s;
	if (proto == TANDEM_PROTO_TCP) {
		if (state == TANDEM_CT_SYN_SENT)
			s = cfg->tcp_syn_timeout_s;
		else if (state == TANDEM_CT_ESTABLISHED)
			s = cfg->tcp_established_timeout_s;
		else
			s = cfg->tcp_closing_timeout_s;
	} else if (proto == TANDEM_PROTO_UDP) {
		s = cfg->udp_timeout_s;
	} else if (proto == TANDEM_PROTO_ICMP) {
		s = cfg->icmp_timeout_s;
	} else {
		s = cfg->other_timeout_s;
	}
	return (__u64)s * 1000000000ULL;
}

static __always_inline int ct_usable(const struct ct_entry *e, const struct dp_config *cfg,
				     const struct pkt *p, __u64 now)
{
	if (now - e->last_seen_ns > ct_timeout_ns(cfg, p->proto, e->state))
		return 0;
	if (p->proto == TANDEM_PROTO_TCP && (p->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN &&
	    e->state >= TANDEM_CT_CLOSING)
		return 0;
	return 1;
}

static __always_inline __u8 ct_initial_state(const struct pkt *p)
{
	if (p->proto != TANDEM_PROTO_TCP)
		return TANDEM_CT_ESTABLISHED;
	if (p->tcp_flags & TCP_RST)
		return TANDEM_CT_CLOSED;
	if (p->tcp_flags & TCP_FIN)
		return TANDEM_CT_CLOSING;
	if ((p->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN)
		return TANDEM_CT_SYN_SENT;
	return TANDEM_CT_ESTABLISHED; /* picked up mid-stream */
}

static __always_inline void ct_advance(struct ct_entry *e, const struct pkt *p, __u8 from_pod,
				       __u64 now)
{
	/* The coarse clock ticks every few ms: most packets of a busy flow find the entry
	 * current and leave its cache line clean, so the two directions of a flow, handled
	 * on different CPUs, do not bounce it between them. */
	if (e->last_seen_ns != now)
		e->last_seen_ns = now;
	if (p->proto != TANDEM_PROTO_TCP)
		return;
	if (p->tcp_flags & TCP_RST)
		e->state = TANDEM_CT_CLOSED;
	else if ((p->tcp_flags & TCP_FIN) && e->state < TANDEM_CT_CLOSING)
		e->state = TANDEM_CT_CLOSING;
	else if (e->state == TANDEM_CT_SYN_SENT && from_pod != e->origin)
		e->state = TANDEM_CT_ESTABLISHED;
}

#endif
